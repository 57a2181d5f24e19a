"""Account-mode benchmark: one MULTIPLE run over many project mailboxes against one SINGLE run over
the same mails in one mailbox (not a test; prints a table).

    python -m tools.bench.modes_bench [--mailboxes N] [--mails-each M] [--repeats R] [--workers W]
                                      [--corpus DIR]
    python -m tools.bench.run_bench --modes        (the same, with the defaults)

Default: 100 project mailboxes with 5 mails each (500 mails, the benchmark's mixed set: corpus mails
and generated 20-200 KB mails) against the same 500 mails in the global mailbox. Both cases use
application permissions (one app token; an Exchange mailbox permission per mailbox), file into a
fresh PostgreSQL database over ODBC per run and move every mail to WICBOX/Processed; WicGlobal.config
allows the whole set in one run. Each case runs once on a fresh state directory (the token comes
from the identity platform) and then R times warm (the token from the cache); the median warm run
is the measured one. Every run is checked (all mails filed, every INBOX empty), so a broken run
cannot pass as a fast one. Target: MULTIPLE within 2x of SINGLE. ``--workers`` sets
WICBOX_MAILCLIENT_WORKERS for both cases (default: not set, the product's default).
"""

from __future__ import annotations

import argparse
import json
import signal
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from imapclient import IMAPClient

from tools.bench.bench_bed import BenchBed, running_bed
from tools.bench.bench_mails import benchmark_mails, corpus_root
from tools.bench.contenders import (
    WicboxInstall,
    filed_count,
    new_install,
    odbc_target,
    prepare_database,
    run_wicbox,
)
from tools.testbed.dovecot import append_message
from wicbox_bridge.commands.run import MAX_MAILS_LIMIT
from wicbox_bridge.store import open_store
from wicbox_bridge.store.parameters import set_parameter

TEMPLATE_FOLDER = "BenchTemplate"
MAX_RATIO_MULTIPLE_TO_SINGLE = 2.0
DEFAULT_MAILBOXES = 100
DEFAULT_MAILS_EACH = 5
DEFAULT_REPEATS = 3
_INSERT_PROJECT = (
    "INSERT INTO WIC_PROJECT (PROJECT_ID, CODE, NAME, ACTIVE, WICBOX_MAILBOX) VALUES (?, ?, ?, 1, ?)"
)

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ModeCase:
    """One case: the account mode and the mails of each mailbox it reads (project id None: global)."""

    mode: str
    mailboxes: tuple[tuple[int | None, str, tuple[bytes, ...]], ...]

    @property
    def mail_count(self) -> int:
        return sum(len(mails) for _project, _mailbox, mails in self.mailboxes)


@dataclass(frozen=True)
class ModeResult:
    """A case's runs: the first (new token) and the warm ones, in seconds of the whole command."""

    case: ModeCase
    first: float
    warm: tuple[float, ...]

    @property
    def measured(self) -> float:
        return statistics.median(self.warm)

    @property
    def mails_per_second(self) -> float:
        return self.case.mail_count / self.measured


def project_mailbox(project_id: int) -> str:
    return f"project-{project_id:03d}@klant.example"


def build_cases(
    bed: BenchBed, mails: Sequence[bytes], mailboxes: int, each: int
) -> tuple[ModeCase, ModeCase]:
    """SINGLE: every mail in the global mailbox; MULTIPLE: ``each`` of them per project mailbox."""
    single = ModeCase("SINGLE", ((None, bed.mailbox, tuple(mails)),))
    multiple = ModeCase(
        "MULTIPLE",
        tuple(
            (number, project_mailbox(number), tuple(mails[(number - 1) * each : number * each]))
            for number in range(1, mailboxes + 1)
        ),
    )
    return single, multiple


# ---- mailboxes ----------------------------------------------------------------------------------
def seed_templates(bed: BenchBed, case: ModeCase) -> None:
    """Create the case's mailboxes, grant them to the app and store their mails in a template folder."""
    for _project, mailbox, mails in case.mailboxes:
        bed.dovecot.add_mailbox(mailbox)
        bed.dovecot.grant_app_access(bed.directory.confidential_client_sp_id, mailbox)
        with bed.dovecot.admin_session(mailbox) as client:
            if client.folder_exists(TEMPLATE_FOLDER):
                client.delete_folder(TEMPLATE_FOLDER)
            client.create_folder(TEMPLATE_FOLDER)
            for raw in mails:
                append_message(client, TEMPLATE_FOLDER, raw)


def restore_inboxes(bed: BenchBed, case: ModeCase) -> int:
    """Every mailbox of the case: WICBOX/* emptied, INBOX a fresh copy of the template. The total."""
    total = 0
    for _project, mailbox, _mails in case.mailboxes:
        with bed.dovecot.admin_session(mailbox) as client:
            _empty(client, "INBOX")
            for _flags, _delimiter, name in client.list_folders("", "WICBOX/*"):
                _empty(client, str(name))
            client.select_folder(TEMPLATE_FOLDER, readonly=True)
            client.copy(client.search("ALL"), "INBOX")
            client.unselect_folder()
            total += _message_count(client, "INBOX")
    return total


def mails_left(bed: BenchBed, case: ModeCase) -> int:
    left = 0
    for _project, mailbox, _mails in case.mailboxes:
        with bed.dovecot.admin_session(mailbox) as client:
            left += _message_count(client, "INBOX")
    return left


def _message_count(client: IMAPClient, folder: str) -> int:
    return int(client.folder_status(folder, [b"MESSAGES"])[b"MESSAGES"])


def _empty(client: IMAPClient, folder: str) -> None:
    client.select_folder(folder)
    uids = client.search("ALL")
    if uids:
        client.delete_messages(uids)
        client.expunge()
    client.unselect_folder()


# ---- one run --------------------------------------------------------------------------------------
def configure(bed: BenchBed, install: WicboxInstall, case: ModeCase, workers: int | None) -> str:
    """A fresh database: application permissions, the case's mode and its projects. Its name."""
    database = prepare_database(bed, install, case.mail_count)
    directory = bed.directory
    parameters: dict[str, str | None] = {
        "WICBOXACCOUNTMODE": case.mode,
        "WICBOX_MAILCLIENT_CLIENTID": directory.confidential_client_id,
        "WICBOX_MAILCLIENT_CLIENTSECRET": directory.confidential_client_secret,
        "WICBOX_MAILCLIENT_PASSWORD": None,
        "WICBOX_MAILCLIENT_SCOPE": "https://outlook.office365.com/.default",
        "WICBOX_MAILCLIENT_WORKERS": None if workers is None else str(workers),
    }
    with open_store(odbc_target(bed.postgres, database)) as store:
        for name, value in parameters.items():
            set_parameter(store, name, value)
        for project, mailbox, _mails in case.mailboxes:
            if project is not None:
                store.execute(
                    _INSERT_PROJECT, (project, f"P{project:03d}", f"Project {project:03d}", mailbox)
                )
    return database


def timed_run(bed: BenchBed, install: WicboxInstall, case: ModeCase, workers: int | None) -> float:
    """One checked ``wicbox run`` of the case into a fresh database; its wall time."""
    database = configure(bed, install, case, workers)
    try:
        _expect(restore_inboxes(bed, case), case.mail_count, "the mailboxes hold")
        child = run_wicbox(install, case.mail_count).require_success(f"wicbox run ({case.mode})")
        report = json.loads(child.stdout)
        _expect(report["counts"]["filed"], case.mail_count, f"wicbox run ({case.mode}) filed")
        _expect(filed_count(bed, database), case.mail_count, "the database holds")
        _expect(mails_left(bed, case), 0, "the INBOXes still hold")
    finally:
        bed.postgres.drop_database(database)
    return child.seconds


def measure(bed: BenchBed, case: ModeCase, options: ModesOptions, progress: Progress) -> ModeResult:
    install = new_install(bed)
    progress(f"{case.mode}: seeding {len(case.mailboxes)} mailbox(es), {case.mail_count} mails")
    seed_templates(bed, case)
    progress(f"{case.mode}: first run (token from the identity platform)")
    first = timed_run(bed, install, case, options.workers)
    warm = []
    for number in range(1, options.repeats + 1):
        progress(f"{case.mode}: warm run {number} of {options.repeats}")
        warm.append(timed_run(bed, install, case, options.workers))
    return ModeResult(case, first, tuple(warm))


def _expect(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise RuntimeError(f"{what} {actual} mails, expected {expected}: the measurement is void")


# ---- report ---------------------------------------------------------------------------------------
def report_lines(
    single: ModeResult, multiple: ModeResult, total_bytes: int, workers: int | None
) -> list[str]:
    ratio = multiple.measured / single.measured
    lines = [
        f"== account modes: {single.case.mail_count} mails, {total_bytes / 2**20:.1f} MB, "
        "application permissions, PostgreSQL over ODBC, "
        f"WICBOX_MAILCLIENT_WORKERS {workers if workers is not None else 'not set (default)'}",
        f"{'case':34} {'first':>7} {'warm (median, range)':>24} {'mails/s':>8} {'vs SINGLE':>10}",
    ]
    for result in (single, multiple):
        count = len(result.case.mailboxes)
        label = f"{result.case.mode}, {count} mailbox" + ("" if count == 1 else "es")
        spread = f"{result.measured:.2f} ({min(result.warm):.2f}-{max(result.warm):.2f})"
        lines.append(
            f"{label:34} {result.first:7.2f} {spread:>24} {result.mails_per_second:8.0f} "
            f"{result.measured / single.measured:9.2f}x"
        )
    verdict = "PASS" if ratio <= MAX_RATIO_MULTIPLE_TO_SINGLE else "MISS"
    target = f"MULTIPLE within {MAX_RATIO_MULTIPLE_TO_SINGLE:g}x of SINGLE"
    lines += ["targets:", f"  {verdict}  {target}: {ratio:.2f}x"]
    return lines


@dataclass(frozen=True)
class ModesOptions:
    mailboxes: int = DEFAULT_MAILBOXES
    mails_each: int = DEFAULT_MAILS_EACH
    repeats: int = DEFAULT_REPEATS
    corpus: Path | None = None
    workers: int | None = None


def run_modes(options: ModesOptions, progress: Progress) -> list[str]:
    """Start the test bed, measure both cases, stop it; the report's lines."""
    progress("generating mails")
    mails = benchmark_mails(options.mailboxes * options.mails_each, corpus_root(options.corpus))
    progress("starting the test bed (identity platform, Dovecot, PostgreSQL)")
    with running_bed() as bed:
        single_case, multiple_case = build_cases(bed, mails, options.mailboxes, options.mails_each)
        single = measure(bed, single_case, options, progress)
        multiple = measure(bed, multiple_case, options, progress)
        progress("stopping the test bed")
    return report_lines(single, multiple, sum(map(len, mails)), options.workers)


def progress_to_stderr(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main_with(options: ModesOptions) -> int:
    """Run and print; 130 when interrupted (everything started is stopped and removed)."""
    try:
        lines = run_modes(options, progress_to_stderr)
    except KeyboardInterrupt:
        progress_to_stderr("interrupted; the test bed is stopped and its files removed")
        return 130
    for line in lines:
        print(line)
    return 0


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1")
    return value


def parse_options(argv: list[str] | None) -> ModesOptions:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--mailboxes", type=_positive, default=DEFAULT_MAILBOXES)
    arguments.add_argument("--mails-each", type=_positive, default=DEFAULT_MAILS_EACH)
    arguments.add_argument("--repeats", type=_positive, default=DEFAULT_REPEATS, help="warm runs per case")
    arguments.add_argument("--workers", type=_positive, help="WICBOX_MAILCLIENT_WORKERS for both cases")
    arguments.add_argument("--corpus", type=Path, help="the test corpus (default: WICBOX_MAIL_CORPUS)")
    parsed = arguments.parse_args(argv)
    if parsed.mailboxes * parsed.mails_each > MAX_MAILS_LIMIT:
        arguments.error(f"at most {MAX_MAILS_LIMIT} mails in all (the cap of one wicbox run)")
    return ModesOptions(parsed.mailboxes, parsed.mails_each, parsed.repeats, parsed.corpus, parsed.workers)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    options = parse_options(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    return main_with(options)


if __name__ == "__main__":
    sys.exit(main())
