"""The IMAP adapter's settings: one frozen object, validated when it is built."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wicbox_bridge.adapters.settings_checks import (
    check_positive_seconds,
    check_throttle_wait,
    checked_folder_keys,
    failed_folder_clash,
)
from wicbox_bridge.config import params as names
from wicbox_bridge.config.params import AfterProcess, Endpoint, Parameters
from wicbox_bridge.errors import ConfigurationError

DEFAULT_TIMEOUT_S = 60.0
DEFAULT_FETCH_BATCH = 100
MAX_FETCH_BATCH = 1000
DEFAULT_FETCH_BATCH_BYTES = 32 * 1024 * 1024
DEFAULT_LARGE_MAIL_BYTES = 4 * 1024 * 1024
DEFAULT_FETCH_PART_BYTES = 2 * 1024 * 1024
MIN_FETCH_PART_BYTES = 1024
DEFAULT_MAX_THROTTLE_WAIT_S = 120.0


@dataclass(frozen=True)
class ImapSettings:
    """How to reach one IMAP server and what to do with the mails read there.

    ``fetch_batch`` is the number of mails per ``UID FETCH``; ``fetch_batch_bytes`` caps the
    announced size of one batch so a few huge mails do not all sit in memory at once (a single
    mail larger than the cap is fetched on its own). A mail whose listed size is above
    ``large_mail_bytes`` is fetched on its own in parts of ``fetch_part_bytes`` (partial
    ``BODY.PEEK[]<offset.length>``), so reading it holds one copy of it plus one part instead of
    the several full-size copies imaplib makes of one big literal. ``allow_insecure_login`` only
    exists for tests: without it, no password or token is ever sent over a connection without TLS.
    """

    endpoint: Endpoint
    ca_bundle: Path | None = None
    source_folder: str = names.DEFAULT_FOLDER
    processed_folder: str = names.DEFAULT_PROCESSED_FOLDER
    failed_folder: str = names.DEFAULT_FAILED_FOLDER
    after_process: AfterProcess = AfterProcess.MOVE
    timeout_s: float = DEFAULT_TIMEOUT_S
    fetch_batch: int = DEFAULT_FETCH_BATCH
    fetch_batch_bytes: int = DEFAULT_FETCH_BATCH_BYTES
    large_mail_bytes: int = DEFAULT_LARGE_MAIL_BYTES
    fetch_part_bytes: int = DEFAULT_FETCH_PART_BYTES
    allow_insecure_login: bool = False
    max_throttle_wait_s: float = DEFAULT_MAX_THROTTLE_WAIT_S

    def __post_init__(self) -> None:
        _check_folders(self)
        _check_limits(self)

    @classmethod
    def from_parameters(
        cls,
        params: Parameters,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        fetch_batch: int = DEFAULT_FETCH_BATCH,
        fetch_batch_bytes: int = DEFAULT_FETCH_BATCH_BYTES,
        large_mail_bytes: int = DEFAULT_LARGE_MAIL_BYTES,
        fetch_part_bytes: int = DEFAULT_FETCH_PART_BYTES,
        max_throttle_wait_s: float = DEFAULT_MAX_THROTTLE_WAIT_S,
    ) -> ImapSettings:
        """Settings from the WICMan parameters plus the tuning values that are not parameters."""
        return cls(
            endpoint=params.imap,
            ca_bundle=params.ca_bundle,
            source_folder=params.source_folder,
            processed_folder=params.processed_folder,
            failed_folder=params.failed_folder,
            after_process=params.after_process,
            timeout_s=timeout_s,
            fetch_batch=fetch_batch,
            fetch_batch_bytes=fetch_batch_bytes,
            large_mail_bytes=large_mail_bytes,
            fetch_part_bytes=fetch_part_bytes,
            max_throttle_wait_s=max_throttle_wait_s,
        )


def _check_folders(settings: ImapSettings) -> None:
    source, processed, failed = checked_folder_keys(
        settings.source_folder, settings.processed_folder, settings.failed_folder, settings.after_process
    )
    if failed in (source, processed):
        other = names.FOLDER if failed == source else names.PROCESSED_FOLDER
        raise failed_folder_clash(f"must differ from {other}: mails that could not be filed must stay apart")


def _check_limits(settings: ImapSettings) -> None:
    if not 1 <= settings.fetch_batch <= MAX_FETCH_BATCH:
        raise ConfigurationError(
            f"ImapSettings.fetch_batch is {settings.fetch_batch}.",
            fix=f"use 1 to {MAX_FETCH_BATCH} mails per batch (50 to 200 works well)",
        )
    if settings.fetch_batch_bytes < 1:
        raise ConfigurationError(
            f"ImapSettings.fetch_batch_bytes is {settings.fetch_batch_bytes}.",
            fix=f"use a positive byte budget, e.g. {DEFAULT_FETCH_BATCH_BYTES}",
        )
    if settings.large_mail_bytes < 1:
        raise ConfigurationError(
            f"ImapSettings.large_mail_bytes is {settings.large_mail_bytes}.",
            fix=f"use a positive size (mails above it are fetched in parts), e.g. {DEFAULT_LARGE_MAIL_BYTES}",
        )
    if settings.fetch_part_bytes < MIN_FETCH_PART_BYTES:
        raise ConfigurationError(
            f"ImapSettings.fetch_part_bytes is {settings.fetch_part_bytes}.",
            fix=f"use at least {MIN_FETCH_PART_BYTES} bytes per part, e.g. {DEFAULT_FETCH_PART_BYTES}",
        )
    check_positive_seconds("ImapSettings", "timeout_s", settings.timeout_s)
    check_throttle_wait("ImapSettings", settings.max_throttle_wait_s)
