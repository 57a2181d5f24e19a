"""Outgoing mail as standards-correct RFC 5322 messages (pure: no I/O).

:func:`build_message` turns an :class:`OutgoingMail` into an ``email.message.EmailMessage`` with
Message-ID, Date, UTF-8 subject and display names (RFC 2047 encoded on the wire), a text and/or
HTML body and attachments (RFC 2231 file names). Every header value is checked first: a CR or LF
in an address or the subject would let the value add headers of its own (header injection), so it
is refused with a :class:`~wicbox_bridge.errors.ParameterError` naming the field.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.utils import format_datetime, getaddresses, make_msgid

from wicbox_bridge.errors import ParameterError

FIELDS = ("from", "to", "cc", "bcc", "subject")
DEFAULT_LABELS: Mapping[str, str] = {
    "from": "From",
    "to": "To",
    "cc": "Cc",
    "bcc": "Bcc",
    "subject": "Subject",
}
_LINE_BREAKS = ("\r", "\n")
_MAX_SUBJECT = 2000
# 7-bit clean bodies: no server along the way needs 8BITMIME.
_TEXT_ENCODING = "quoted-printable"


@dataclass(frozen=True)
class OutgoingAttachment:
    filename: str
    content_type: str
    content: bytes = field(repr=False)


@dataclass(frozen=True)
class OutgoingMail:
    """A mail to build: addresses as written ("Naam <a@b>", several separated by ',' or ';')."""

    from_addr: str
    to: str
    subject: str
    cc: str = ""
    bcc: str = ""
    body_text: str | None = None
    body_html: str | None = None
    attachments: tuple[OutgoingAttachment, ...] = ()


@dataclass(frozen=True)
class Envelope:
    """What SMTP's MAIL FROM and RCPT TO carry (Bcc recipients included, never in a header)."""

    sender: str
    recipients: tuple[str, ...]


@dataclass(frozen=True)
class BuiltMessage:
    message: EmailMessage
    envelope: Envelope
    message_id: str

    def as_bytes(self) -> bytes:
        return self.message.as_bytes(policy=policy.SMTP)


def reject_line_breaks(label: str, value: str) -> None:
    """Header injection: a value with CR or LF could start a header of its own."""
    if any(mark in value for mark in _LINE_BREAKS) or "\x00" in value:
        raise ParameterError(
            label,
            "contains a line break (CR/LF) or NUL character; a header value must be one line "
            "(refused to prevent header injection).",
            fix=f"remove the line breaks from {label}",
        )


def _split_list(text: str) -> list[str]:
    """Split an address list at ',' or ';' outside quotes and angle brackets."""
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    angle = 0
    for char in text:
        if char == '"':
            quoted = not quoted
        elif not quoted and char == "<":
            angle += 1
        elif not quoted and char == ">":
            angle = max(0, angle - 1)
        if char in ",;" and not quoted and angle == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part.strip() for part in parts if part.strip()]


def parse_addresses(label: str, text: str) -> tuple[Address, ...]:
    """Every address of a list, with its display name; ParameterError naming ``label`` when invalid."""
    reject_line_breaks(label, text)
    addresses = []
    for item in _split_list(text):
        parsed = getaddresses([item])
        if len(parsed) != 1:
            raise _invalid_address(label, item)
        name, spec = parsed[0]
        addresses.append(_address(label, name, spec, item))
    return tuple(addresses)


def _address(label: str, name: str, spec: str, written: str) -> Address:
    local, at, domain = spec.rpartition("@")
    if not at or not local or "." not in domain or any(c.isspace() for c in spec):
        raise _invalid_address(label, written)
    if not spec.isascii():
        raise ParameterError(
            label,
            f"{written!r} has non-ASCII characters in the address itself; Exchange Online accepts "
            "them only in display names.",
            fix="write the address in ASCII (an internationalised domain in its xn-- form)",
        )
    return Address(display_name=name, addr_spec=spec)


def _invalid_address(label: str, written: str) -> ParameterError:
    return ParameterError(
        label,
        f"{written!r} is not an e-mail address.",
        fix=f"write {label} as name@domain or Name <name@domain>, several separated by ',' or ';'",
    )


STABLE_ID_HEADER = "X-WICBOX-Message-ID"
"""A copy of the Message-ID that Exchange leaves alone (it rewrites Message-ID for some senders): the
outbox looks an interrupted mail up by either."""


def message_id_domain(address: str) -> str:
    return address.rpartition("@")[2].lower() or "localhost"


def new_message_id(from_address: str) -> str:
    """A globally unique Message-ID in the sender's domain, angle brackets included."""
    return make_msgid(domain=message_id_domain(from_address))


def build_message(
    mail: OutgoingMail,
    *,
    message_id: str | None = None,
    date: dt.datetime | None = None,
    labels: Mapping[str, str] = DEFAULT_LABELS,
) -> BuiltMessage:
    """The message and its envelope; ``message_id`` and ``date`` default to new ones."""
    senders = parse_addresses(labels["from"], mail.from_addr)
    if len(senders) != 1:
        raise ParameterError(
            labels["from"], "must be exactly one address.", fix=f"set {labels['from']} to one address"
        )
    to, cc, bcc = (parse_addresses(labels[name], getattr(mail, name)) for name in ("to", "cc", "bcc"))
    if not (to or cc or bcc):
        raise ParameterError(
            labels["to"], "is empty: the mail has no recipient.", fix=f"fill in {labels['to']}"
        )
    reject_line_breaks(labels["subject"], mail.subject)
    if len(mail.subject) > _MAX_SUBJECT:
        raise ParameterError(
            labels["subject"], f"is longer than {_MAX_SUBJECT} characters.", fix="shorten the subject"
        )
    identifier = message_id or new_message_id(senders[0].addr_spec)
    reject_line_breaks("Message-ID", identifier)
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = senders
    if to:
        message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(date or dt.datetime.now(dt.timezone.utc))
    message["Message-ID"] = identifier
    message[STABLE_ID_HEADER] = identifier  # kept where a server rewrites the Message-ID
    _set_body(message, mail)
    for attachment in mail.attachments:
        _attach(message, attachment)
    recipients = tuple(dict.fromkeys(address.addr_spec for address in (*to, *cc, *bcc)))
    return BuiltMessage(message, Envelope(senders[0].addr_spec, recipients), identifier)


def _set_body(message: EmailMessage, mail: OutgoingMail) -> None:
    if mail.body_text is not None and mail.body_html is not None:
        message.set_content(mail.body_text, charset="utf-8", cte=_TEXT_ENCODING)
        message.add_alternative(mail.body_html, subtype="html", charset="utf-8", cte=_TEXT_ENCODING)
    elif mail.body_html is not None:
        message.set_content(mail.body_html, subtype="html", charset="utf-8", cte=_TEXT_ENCODING)
    else:
        message.set_content(mail.body_text or "", charset="utf-8", cte=_TEXT_ENCODING)


def _attach(message: EmailMessage, attachment: OutgoingAttachment) -> None:
    reject_line_breaks("attachment file name", attachment.filename)
    maintype, _, subtype = attachment.content_type.partition("/")
    if not maintype or not subtype or any(c in attachment.content_type for c in "\r\n;"):
        maintype, subtype = "application", "octet-stream"
    message.add_attachment(
        attachment.content, maintype=maintype.strip(), subtype=subtype.strip(), filename=attachment.filename
    )


def header_values(raw: bytes) -> EmailMessage:
    """The headers of a complete message (the body is not parsed)."""
    parsed = BytesHeaderParser(policy=policy.default).parsebytes(raw)
    assert isinstance(parsed, EmailMessage)  # policy.default builds EmailMessage objects
    return parsed


def message_id_of(raw: bytes) -> str | None:
    """The Message-ID header of a complete message, or None."""
    value = header_values(raw).get("Message-ID")
    text = str(value).strip() if value is not None else ""
    return text or None


def envelope_of_raw(raw: bytes) -> Envelope | None:
    """The envelope a message's own From/To/Cc/Bcc headers give, or None without a sender."""
    headers = header_values(raw)
    senders = getaddresses([str(value) for value in headers.get_all("From", [])])
    if not senders or not senders[0][1]:
        return None
    recipients = getaddresses(
        [str(value) for name in ("To", "Cc", "Bcc") for value in headers.get_all(name, [])]
    )
    return Envelope(senders[0][1], tuple(dict.fromkeys(spec for _name, spec in recipients if spec)))
