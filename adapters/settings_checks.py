"""Checks the mailbox adapters' settings share: the three folder parameters, and timeouts."""

from __future__ import annotations

from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import AfterProcess, folder_key
from wicbox_bridge.errors import ConfigurationError, ParameterError

FOLDER_SEPARATOR = "/"  # how folder parameters separate levels; IMAP maps it to the server's delimiter


def checked_folder_keys(
    source: str, processed: str, failed: str, after_process: AfterProcess
) -> tuple[str, str, str]:
    """The folders' keys, once each is a folder name and the processed folder is not the source."""
    folders = ((names.FOLDER, source), (names.PROCESSED_FOLDER, processed), (names.FAILED_FOLDER, failed))
    for parameter, folder in folders:
        if not folder.strip() or any(not part.strip() for part in folder.split(FOLDER_SEPARATOR)):
            raise ParameterError(
                parameter,
                f"{folder!r} is not a folder name (empty, or an empty level between '/')",
                fix=f"run {names.set_command(parameter, '<folder>')} with a folder such as INBOX or "
                "WICBOX/Processed",
            )
    source_key, processed_key, failed_key = (folder_key(folder) for _parameter, folder in folders)
    if after_process is AfterProcess.MOVE and processed_key == source_key:
        raise ParameterError(
            names.PROCESSED_FOLDER,
            f"is the source folder ({names.FOLDER}); filed mails would be read again",
            fix=f"run {names.set_command(names.PROCESSED_FOLDER, names.DEFAULT_PROCESSED_FOLDER)} "
            "(or another folder)",
        )
    return source_key, processed_key, failed_key


def failed_folder_clash(problem: str) -> ParameterError:
    """The failed folder is the source or the processed folder; ``problem`` says so."""
    return ParameterError(
        names.FAILED_FOLDER,
        problem,
        fix=f"run {names.set_command(names.FAILED_FOLDER, names.DEFAULT_FAILED_FOLDER)} (or another folder "
        "of its own)",
    )


def check_positive_seconds(owner: str, name: str, seconds: float) -> None:
    if seconds <= 0:
        raise ConfigurationError(f"{owner}.{name} is {seconds}.", fix="use a positive number of seconds")


def check_throttle_wait(owner: str, seconds: float) -> None:
    if seconds < 0:
        raise ConfigurationError(
            f"{owner}.max_throttle_wait_s is {seconds}.",
            fix="use 0 (do not wait out throttling) or a positive number of seconds",
        )
