"""The trace line logged for every mail (logger ``wicbox.mail``), so support can find any mail.

One line of ``name=value`` fields in a fixed order::

    mailbox=wic@klant.be folder=INBOX validity=1700000000 key=4711 message_id=abc@host
    project=ALPHA(1) outcome=filed mail_id=812 routing="recipient project mailbox"

``key`` is the IMAP UID (meaningful with ``folder`` and ``validity``, the UIDVALIDITY) or the Graph
immutable id (``validity=-``). ``project`` is the project's code with its id, or ``unassigned``.
A value that is empty is written ``-``; a value with a space, a quote, a backslash or ``=`` is
written as a JSON string, so every line splits into the same fields (a malformed Message-ID
included). Pure: no I/O.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from wicbox_bridge.adapters.base import MailRef
from wicbox_bridge.logs.escape import escape_controls

_NEEDS_QUOTES = re.compile(r'[\s"\\=\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]')


def field_value(value: object) -> str:
    """One field's value as written: ``-`` when empty, a JSON string when it would not split."""
    text = "" if value is None else str(value)
    if not text:
        return "-"
    return escape_controls(json.dumps(text, ensure_ascii=False)) if _NEEDS_QUOTES.search(text) else text


def project_field(project_id: int | None, codes: Mapping[int, str]) -> str:
    """``CODE(id)``, the bare id when the code is unknown, or ``unassigned``."""
    if project_id is None:
        return "unassigned"
    code = codes.get(project_id)
    return f"{code}({project_id})" if code else str(project_id)


def mail_trace_line(
    ref: MailRef,
    *,
    message_id: str | None,
    project: str,
    outcome: str,
    mail_id: int | None,
    routing: str,
) -> str:
    """The whole line (see the module docstring)."""
    fields = (
        ("mailbox", ref.mailbox),
        ("folder", ref.folder),
        ("validity", ref.validity),
        ("key", ref.key),
        ("message_id", message_id),
        ("project", project),
        ("outcome", outcome),
        ("mail_id", mail_id),
        ("routing", routing),
    )
    return " ".join(f"{name}={field_value(value)}" for name, value in fields)
