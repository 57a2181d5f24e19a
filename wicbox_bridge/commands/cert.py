"""``wicbox cert new|show``: a certificate for application permissions, made here or the configured one."""

from __future__ import annotations

import datetime as dt
import getpass
import json
import socket
from pathlib import Path

import click

from wicbox_bridge.auth.certificate import (
    CERTIFICATES_PAGE,
    DEFAULT_DAYS,
    CertificateCredential,
    Validity,
    describe,
    load_certificate,
    new_certificate,
)
from wicbox_bridge.auth.keyfile import private_file_problem, write_private_file, write_public_file
from wicbox_bridge.commands import examples, pass_runtime
from wicbox_bridge.config.params import CERTIFICATE
from wicbox_bridge.errors import ParameterError
from wicbox_bridge.helpformat import WholeSummaryGroup
from wicbox_bridge.runtime import Runtime


@click.group(
    "cert",
    cls=WholeSummaryGroup,
    epilog=examples(
        ("wicbox cert new", "key pair and certificate for the app registration"),
        ("wicbox cert show", "the configured certificate's thumbprint and validity"),
    ),
)
def cert_group() -> None:
    """Certificates for application permissions (instead of a client secret)."""


@cert_group.command(
    "new",
    epilog=examples(
        ("wicbox cert new --days 730 --out D:\\WIC\\cert", "valid two years, files in that folder")
    ),
)
@click.option(
    "--days",
    type=click.IntRange(1, 3650),
    default=DEFAULT_DAYS,
    show_default=True,
    help="How long the certificate is valid.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for the two files. Default: the current folder.",
)
@click.option("--name", default="wicbox-app", show_default=True, help="File name (without extension).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def cert_new_command(days: int, out_dir: Path | None, name: str, as_json: bool) -> None:
    """Make an RSA key pair and a self-signed certificate for the app registration.

    Writes NAME.pem (the private key and the certificate, readable only by the current account:
    run this as the account the scheduled task runs as, or give that account read access) and
    NAME.cer (the public certificate to upload in Azure). Existing files are never overwritten.
    """
    folder = (out_dir or Path.cwd()).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    private_path, public_path = folder / f"{name}.pem", folder / f"{name}.cer"
    made = new_certificate(
        f"wicbox-bridge {socket.gethostname()}", days=days, now=dt.datetime.now(dt.timezone.utc)
    )
    write_private_file(private_path, made.private_pem)
    write_public_file(public_path, made.public_pem)
    credential = made.credential
    if as_json:
        click.echo(
            json.dumps(
                {
                    "certificate": str(private_path),
                    "public_certificate": str(public_path),
                    "thumbprint": credential.sha1_thumbprint,
                    "not_after": credential.not_after.isoformat(),
                }
            )
        )
        return
    rows = [
        ("private key and certificate", f"{private_path} (readable only by {_account()})"),
        ("certificate to upload", str(public_path)),
        ("thumbprint (SHA-1)", credential.sha1_thumbprint),
        ("expires", f"{credential.not_after:%Y-%m-%d %H:%M} UTC"),
    ]
    _print_rows(rows)
    click.echo("next steps:")
    click.echo(f"  1. upload {public_path.name} under {CERTIFICATES_PAGE} > Upload certificate")
    click.echo(f'  2. wicbox params set {CERTIFICATE} "{private_path}"')
    click.echo("  3. wicbox check")


@cert_group.command("show", epilog=examples(("wicbox cert show --json", "")))
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
@pass_runtime
def cert_show_command(runtime: Runtime, as_json: bool) -> int:
    """Show the configured certificate: file, thumbprint, subject, validity (never the key)."""
    with runtime.open_store() as store:
        params = runtime.load_parameters(store).parameters
    if params.certificate is None:
        raise ParameterError(
            CERTIFICATE,
            "is not set: application permissions use a client secret, or delegated permissions are used",
            fix="make one with `wicbox cert new`, upload its .cer, then "
            f"`wicbox params set {CERTIFICATE} <the .pem file>`",
        )
    credential = load_certificate(params.certificate, params.certificate_password)
    now = dt.datetime.now(dt.timezone.utc)
    problem = private_file_problem(credential.path)
    if as_json:
        shown = describe(credential) | {"days_left": round(credential.days_left(now), 1)}
        if problem:
            shown["warning"] = problem
        click.echo(json.dumps(shown))
    else:
        _print_rows([(label.replace("_", " "), value) for label, value in describe(credential).items()])
        click.echo(_validity(credential, now))
        if problem:
            click.echo(f"WARN {problem}")
    return 0 if credential.validity(now).usable else 3


def _validity(credential: CertificateCredential, now: dt.datetime) -> str:
    days = credential.days_left(now)
    validity = credential.validity(now)
    if validity is Validity.EXPIRED:
        return (
            "FAIL the certificate has expired: run `wicbox cert new`, upload the .cer and set the parameter"
        )
    if validity is Validity.NOT_YET_VALID:
        start = f"{credential.not_before:%Y-%m-%d %H:%M} UTC"
        return f"FAIL the certificate is not valid before {start}: check this server's clock"
    if validity is Validity.EXPIRING:
        return (
            f"WARN the certificate expires in {days:.0f} days: make and upload a new one (`wicbox cert new`)"
        )
    return f"OK valid for {days:.0f} more days"


def _print_rows(rows: list[tuple[str, str]]) -> None:
    width = max(len(label) for label, _ in rows) + 1
    for label, value in rows:
        click.echo(f"{label + ':':<{width}} {value}")


def _account() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "the current account"
