"""An outgoing message taken apart for an API that writes the MIME itself (Microsoft Graph's drafts).

Such an API takes a subject, one body (HTML or text), address lists and files. :func:`unpack` reads
a complete message into those parts with the MIME tree and the decoding of the incoming side
(:mod:`wicbox_bridge.mail.tree`, :mod:`wicbox_bridge.mail.content`):

* the body is the first ``text/html`` leaf that is no attachment and names no file, else the first
  such ``text/plain`` leaf, else empty text. Of a ``multipart/alternative`` only its richest branch
  holding such a body counts (the last one, HTML before text): the other branches are the same
  content in another form, and the API writes its own plain-text alternative;
* every other leaf is a file: its bytes with the transfer encoding undone, exactly; an attached
  ``message/*`` part byte for byte; a part whose transfer encoding is invalid as its encoded bytes
  (noted). A file with a Content-ID that is not marked as an attachment is inline (the HTML shows
  it with ``cid:``). Names are the declared ones made safe to save; a part without one is named
  ``attachment-N.ext`` (an attached message after its subject);
* display names and the subject are decoded (RFC 2047, 8-bit headers); Message-ID and
  X-WICBOX-Message-ID are kept as written.

Nothing is dropped silently: whatever could not be read exactly is listed in ``problems``. Only a
structure the parser cannot read at all raises :class:`UnpackError`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wicbox_bridge.mail.content import decode_transfer, name_from_subject
from wicbox_bridge.mail.filename import sanitise_filename
from wicbox_bridge.mail.headers import HeaderParams, filename_of, parse_addresses, parse_params
from wicbox_bridge.mail.outgoing import STABLE_ID_HEADER
from wicbox_bridge.mail.text import decode_bytes, header_bytes_to_text, header_text, scrub_text
from wicbox_bridge.mail.tree import MimePart, split_fast, split_stdlib

NamedAddress = tuple[str, str]
"""(display name, addr-spec); the name is "" when the header gives none."""

_HTML, _TEXT = "text/html", "text/plain"


class UnpackError(ValueError):
    """The message's structure cannot be read at all (for example nested beyond the parser's stack)."""


@dataclass(frozen=True)
class UnpackedFile:
    """One file of the message: a safe name, its ``type/subtype`` (text with its charset), its bytes."""

    name: str
    content_type: str
    content: bytes = field(repr=False)
    content_id: str | None = None
    inline: bool = False

    @property
    def size(self) -> int:
        return len(self.content)


@dataclass(frozen=True)
class UnpackedMail:
    subject: str
    sender: NamedAddress | None
    to: tuple[NamedAddress, ...]
    cc: tuple[NamedAddress, ...]
    bcc: tuple[NamedAddress, ...]
    reply_to: tuple[NamedAddress, ...]
    message_id: str | None
    stable_id: str | None
    body: str
    body_is_html: bool
    files: tuple[UnpackedFile, ...]
    problems: tuple[str, ...] = ()

    @property
    def recipients(self) -> tuple[NamedAddress, ...]:
        return (*self.to, *self.cc, *self.bcc)


@dataclass(frozen=True)
class _Leaf:
    """A leaf with its headers read once."""

    part: MimePart
    what: str
    content_type: str
    type_params: HeaderParams
    disposition: HeaderParams
    declared_name: str | None

    def is_body(self, wanted: str) -> bool:
        return (
            self.content_type == wanted
            and not self.part.kept_whole
            and self.disposition.value != "attachment"
            and self.declared_name is None
        )


def unpack(raw: bytes) -> UnpackedMail:
    """The parts of a complete message. Raises UnpackError only for unreadable structure."""
    root = _tree(raw)
    problems = root.all_problems()
    leaves = [_describe(part, index, problems) for index, part in enumerate(_leaves(root), start=1)]
    body = _body(leaves)
    files = tuple(
        _file(leaf, number, problems)
        for number, leaf in enumerate((leaf for leaf in leaves if leaf is not body), start=1)
    )
    senders = _addresses(root, "from", "From", problems)
    return UnpackedMail(
        subject=header_text(root.header("subject"), "Subject", problems) or "",
        sender=senders[0] if senders else None,
        to=_addresses(root, "to", "To", problems),
        cc=_addresses(root, "cc", "Cc", problems),
        bcc=_addresses(root, "bcc", "Bcc", problems),
        reply_to=_addresses(root, "reply-to", "Reply-To", problems),
        message_id=_identifier(root, "message-id", problems),
        stable_id=_identifier(root, STABLE_ID_HEADER.lower(), problems),
        body=_body_text(body, problems),
        body_is_html=body is not None and body.content_type == _HTML,
        files=files,
        problems=tuple(dict.fromkeys(problems)),
    )


def _tree(raw: bytes) -> MimePart:
    try:
        return split_fast(raw)
    except Exception:  # noqa: S110 - FastPathUnsupported, or a fast-path bug: the reference path decides
        pass
    try:
        return split_stdlib(raw)
    except RecursionError as exc:
        raise UnpackError(f"the MIME structure cannot be read ({type(exc).__name__})") from exc


def _leaves(part: MimePart) -> list[MimePart]:
    """Leaves in document order; of a multipart/alternative only the branch :func:`_richest` picks."""
    if not part.is_container:
        return [part]
    children = part.children
    if part.content_type == "multipart/alternative":
        children = (_richest(children),)
    return [leaf for child in children for leaf in _leaves(child)]


def _richest(branches: tuple[MimePart, ...]) -> MimePart:
    """The last branch with an HTML body, else the last with a text body, else the last one."""
    for wanted in (_HTML, _TEXT):
        for branch in reversed(branches):
            if any(_describe(leaf, 0, []).is_body(wanted) for leaf in _leaves(branch)):
                return branch
    return branches[-1]


def _describe(part: MimePart, index: int, problems: list[str]) -> _Leaf:
    what = f"part {index} ({part.content_type})"
    content_type = (
        _TEXT if part.content_type.startswith("multipart/") and not part.kept_whole else part.content_type
    )
    type_params = parse_params(_raw_text(part, "content-type", what, problems), what, problems)
    disposition = parse_params(_raw_text(part, "content-disposition", what, problems), what, problems)
    return _Leaf(
        part, what, content_type, type_params, disposition, filename_of(disposition, type_params, problems)
    )


def _raw_text(part: MimePart, name: str, what: str, problems: list[str]) -> str | None:
    raw = part.header(name)
    return None if raw is None else header_bytes_to_text(raw, f"{what} {name}", problems)


def _body(leaves: list[_Leaf]) -> _Leaf | None:
    for wanted in (_HTML, _TEXT):
        found = next((leaf for leaf in leaves if leaf.is_body(wanted)), None)
        if found is not None:
            return found
    return None


def _body_text(leaf: _Leaf | None, problems: list[str]) -> str:
    if leaf is None:
        return ""
    data = _decoded(leaf, problems)
    text = decode_bytes(data, leaf.type_params.get("charset"), leaf.what, problems)
    return scrub_text(text, leaf.what, problems)


def _decoded(leaf: _Leaf, problems: list[str]) -> bytes:
    if leaf.part.kept_whole:
        return bytes(leaf.part.body)
    encoding = leaf.part.header("content-transfer-encoding")
    decoded = decode_transfer(leaf.part.body, encoding, leaf.what, problems)
    if decoded is None:
        problems.append(f"{leaf.what}: invalid {encoding!r} transfer encoding; sent as its encoded bytes")
        return bytes(leaf.part.body)
    return decoded


def _file(leaf: _Leaf, number: int, problems: list[str]) -> UnpackedFile:
    content = _decoded(leaf, problems)
    name = leaf.declared_name
    if name is None and leaf.content_type == "message/rfc822":
        name = name_from_subject(content, problems)
    safe = sanitise_filename(name, number, leaf.content_type)
    if name is not None and safe != name:
        problems.append(f"file {number}: name {name!r} sent as {safe!r}")
    content_id = _content_id(leaf.part)
    charset = leaf.type_params.get("charset")
    typed = (
        f"{leaf.content_type}; charset={charset}"
        if charset and leaf.content_type.startswith("text/")
        else None
    )
    return UnpackedFile(
        name=safe,
        content_type=typed or leaf.content_type,
        content=content,
        content_id=content_id,
        inline=content_id is not None and leaf.disposition.value != "attachment",
    )


def _content_id(part: MimePart) -> str | None:
    raw = part.header("content-id")
    if raw is None:
        return None
    value = "".join(header_bytes_to_text(raw, "Content-ID", []).split()).strip("<>")
    return value or None


def _addresses(root: MimePart, name: str, label: str, problems: list[str]) -> tuple[NamedAddress, ...]:
    pairs: list[NamedAddress] = []
    for raw in root.header_all(name):
        pairs.extend(parse_addresses(header_bytes_to_text(raw, label, problems), label, problems))
    return tuple(pairs)


def _identifier(root: MimePart, name: str, problems: list[str]) -> str | None:
    raw = root.header(name)
    if raw is None:
        return None
    return header_bytes_to_text(raw, name, problems).strip() or None
