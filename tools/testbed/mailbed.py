"""The mail side of a test bed outside pytest (the demo, the crash matrix): the identity-platform
emulator, Dovecot and the Exchange-like SMTP server (keeping Sent Items copies) on one private
loopback address, each stopped by the caller's ExitStack."""

from __future__ import annotations

import random
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from tools.testbed.dovecot import DovecotServer
from tools.testbed.idp import IdentityPlatformEmulator, SeededDirectory, seed_test_directory
from tools.testbed.pki import LoopbackPki, create_loopback_pki
from tools.testbed.smtp import SmtpServer, lmtp_deliverer


def random_loopback_ip() -> str:
    """A 127.x.y.z of this run's own, so the emulator can take port 443 next to other test beds."""
    rng = random.SystemRandom()
    return f"127.{rng.randint(1, 254)}.{rng.randint(1, 254)}.{rng.randint(2, 254)}"


@dataclass(frozen=True)
class MailBed:
    address: str
    pki: LoopbackPki
    idp: IdentityPlatformEmulator
    directory: SeededDirectory
    dovecot: DovecotServer
    smtp: SmtpServer


def start_mail_bed(stack: ExitStack, root: Path, address: str | None = None) -> MailBed:
    """Start the three servers (certificates under ``root``/pki); ``stack`` stops them."""
    host = address or random_loopback_ip()
    pki = create_loopback_pki(root / "pki", extra_ips=(host,))
    idp = stack.enter_context(IdentityPlatformEmulator(pki, host))
    directory = seed_test_directory(idp)
    dovecot = DovecotServer(host, pki)
    stack.callback(dovecot.close)
    dovecot.start()
    deliver = lmtp_deliverer(host, dovecot.lmtp_port)
    smtp = SmtpServer(host, pki, dovecot.accounts, deliver, keep_sent=dovecot.keep_in_sent_items)
    smtp.start()
    stack.callback(smtp.stop)
    return MailBed(host, pki, idp, directory, dovecot, smtp)
