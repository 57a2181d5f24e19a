"""Small, deterministic test mails (CRLF line ends, as IMAP servers hand them out)."""

from __future__ import annotations


def make_mail(
    number: int,
    *,
    to: str = "wicbox@klant.example",
    subject: str | None = None,
    sender: str = "Burger <burger@example.org>",
    body: str | None = None,
    message_id: bool = True,
    extra_headers: str = "",
) -> bytes:
    """A plain-text mail; ``number`` makes it unique and orders it."""
    subject = subject if subject is not None else f"Vraag nummer {number}"
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        f"Date: Mon, 02 Nov 2026 10:{number // 60 % 60:02d}:{number % 60:02d} +0100",
    ]
    if message_id:
        lines.append(f"Message-ID: <mail-{number}@example.org>")
    if extra_headers:
        lines.append(extra_headers)
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", ""]
    lines.append(body if body is not None else f"Beste, dit is bericht {number}.")
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def to_crlf(raw: bytes) -> bytes:
    """What an IMAP server stores for ``raw``: every line ending as CRLF."""
    return raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
