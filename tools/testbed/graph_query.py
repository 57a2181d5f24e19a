"""OData query options of the Graph mail endpoints, as the emulator understands them (pure).

Supported: ``$select``, ``$top`` (1..1000), ``$skiptoken`` (opaque, made by the emulator),
``$orderby`` on ``receivedDateTime`` (asc/desc), and ``$filter`` with ``isRead eq true|false`` and
``receivedDateTime ge|gt|le|lt <timestamp>`` and ``internetMessageId eq '<id>'`` joined by ``and``,
and ``$count=true`` (the number of
messages matching ``$filter``, ignoring ``$top`` and paging, as ``@odata.count``: Outlook resources
count without the ``ConsistencyLevel: eventual`` header that directory objects need). Like
Exchange Online, a query with both ``$filter`` and ``$orderby`` must name the ordered property
first in the filter, or the server answers ``400 InefficientFilter``.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from tools.testbed.graph_model import GraphStoreError, Message

MAX_TOP = 1000
DEFAULT_TOP = 10
_CLAUSE = re.compile(r"^\s*(\w+)\s+(eq|ne|ge|gt|le|lt)\s+('[^']*'|\S+)\s*$", re.IGNORECASE)
_OPERATORS: dict[str, Callable[[object, object], bool]] = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "ge": lambda a, b: a >= b,  # type: ignore[operator]
    "gt": lambda a, b: a > b,  # type: ignore[operator]
    "le": lambda a, b: a <= b,  # type: ignore[operator]
    "lt": lambda a, b: a < b,  # type: ignore[operator]
}


def bad_request(message: str, code: str = "BadRequest") -> GraphStoreError:
    return GraphStoreError(400, code, message)


def graph_time(moment: dt.datetime) -> str:
    """Graph's timestamp format: UTC, seconds, a trailing Z."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise bad_request(f"Invalid filter clause: the timestamp {text!r} is not valid.") from None


@dataclass(frozen=True)
class Clause:
    prop: str
    operator: str
    value: object

    def matches(self, message: Message) -> bool:
        actual: object
        if self.prop == "isRead":
            actual = message.is_read
        elif self.prop == "internetMessageId":
            actual = message.headers()["message-id"].strip()
        elif self.prop.startswith("header:"):
            actual = message.header(self.prop.removeprefix("header:")).strip()
        else:
            actual = message.received
        return _OPERATORS[self.operator](actual, self.value)


_INTERNET_HEADERS = "{00020386-0000-0000-c000-000000000046}"  # PS_INTERNET_HEADERS
_EXTENDED = re.compile(
    r"^\s*singleValueExtendedProperties/Any\(\s*ep:\s*ep/id eq '([^']*)'"
    r" and ep/value eq '((?:[^']|'')*)'\s*\)\s*$",
    re.IGNORECASE,
)


def _extended_clause(text: str) -> Clause | None:
    """``singleValueExtendedProperties/Any(ep: ep/id eq 'String {PS_INTERNET_HEADERS} Name X-...' and
    ep/value eq '...')``: a custom internet header of the message equals the value."""
    match = _EXTENDED.match(text)
    if match is None:
        return None
    kind, _, rest = match.group(1).partition(" ")
    guid, _, name = rest.partition(" Name ")
    if kind.lower() != "string" or guid.lower() != _INTERNET_HEADERS or not name:
        raise bad_request(f"The extended property '{match.group(1)}' is not supported here.")
    return Clause("header:" + name, "eq", match.group(2).replace("''", "'"))


def parse_filter(text: str) -> list[Clause]:
    extended = _extended_clause(text)
    if extended is not None:
        return [extended]
    clauses: list[Clause] = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CLAUSE.match(part)
        if not match:
            raise bad_request(f"Invalid filter clause: {part}")
        prop, operator, value = match.group(1), match.group(2).lower(), match.group(3)
        if prop == "isRead" and value.lower() in ("true", "false") and operator in ("eq", "ne"):
            clauses.append(Clause(prop, operator, value.lower() == "true"))
        elif prop == "receivedDateTime":
            clauses.append(Clause(prop, operator, _parse_time(value)))
        elif (
            prop == "internetMessageId" and operator == "eq" and value.startswith("'") and value.endswith("'")
        ):
            clauses.append(Clause(prop, operator, value[1:-1].replace("''", "'")))
        else:
            raise bad_request(f"Could not find a property named '{prop}' or the clause is not supported.")
    return clauses


@dataclass(frozen=True)
class MessageQuery:
    select: tuple[str, ...]
    top: int
    skip: int
    descending: bool | None  # None: no $orderby
    clauses: tuple[Clause, ...]
    count: bool = False
    message_size: bool = False  # $expand of PidTagMessageSize (see parse_expand)

    def matching(self, messages: list[Message]) -> list[Message]:
        return [m for m in messages if all(clause.matches(m) for clause in self.clauses)]

    def apply(self, messages: list[Message]) -> tuple[list[Message], bool]:
        """This page of ``messages`` and whether more follow."""
        chosen = self.matching(messages)
        if self.descending is None:
            chosen.sort(key=lambda m: m.created)
        else:
            chosen.sort(key=lambda m: (m.received, m.created), reverse=self.descending)
        page = chosen[self.skip : self.skip + self.top]
        return page, self.skip + self.top < len(chosen)


def parse_top(query: Mapping[str, str]) -> int:
    text = query.get("$top")
    if text is None:
        return DEFAULT_TOP
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOP:
        raise bad_request(f"Invalid value '{text}' for $top query option: must be 1 to {MAX_TOP}.")
    return int(text)


def skiptoken(offset: int) -> str:
    return base64.urlsafe_b64encode(f"offset:{offset}".encode()).decode("ascii")


def parse_skip(query: Mapping[str, str]) -> int:
    token = query.get("$skiptoken")
    if token is None:
        return 0
    try:
        kind, _, number = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind == "offset" and number.isdigit():
            return int(number)
    except ValueError:
        pass
    raise bad_request("The $skiptoken is not valid.")


def _orderby(text: str | None) -> bool | None:
    if text is None:
        return None
    parts = text.split()
    if not parts or parts[0] != "receivedDateTime" or len(parts) > 2:
        raise bad_request(f"The $orderby '{text}' is not supported by this emulator.")
    direction = parts[1].lower() if len(parts) == 2 else "asc"
    if direction not in ("asc", "desc"):
        raise bad_request(f"Invalid $orderby direction '{parts[1]}'.")
    return direction == "desc"


def parse_message_query(query: Mapping[str, str]) -> MessageQuery:
    select = tuple(item.strip() for item in query.get("$select", "").split(",") if item.strip())
    clauses = parse_filter(query["$filter"]) if "$filter" in query else []
    descending = _orderby(query.get("$orderby"))
    if descending is not None and clauses and clauses[0].prop != "receivedDateTime":
        raise bad_request(
            "The restriction or sort order is too complex for this operation.", "InefficientFilter"
        )
    count = parse_count(query)
    return MessageQuery(
        select, parse_top(query), parse_skip(query), descending, tuple(clauses), count, parse_expand(query)
    )


# The one $expand the emulator knows: the message size (MAPI PidTagMessageSize) as a
# single-value extended property, the way a client learns a message's size when listing.
MESSAGE_SIZE_PROPERTY = "Integer 0x0E08"
_MESSAGE_SIZE_EXPAND = f"singleValueExtendedProperties($filter=id eq '{MESSAGE_SIZE_PROPERTY}')"


def parse_expand(query: Mapping[str, str]) -> bool:
    text = query.get("$expand")
    if text is None:
        return False
    if " ".join(text.split()).lower() != _MESSAGE_SIZE_EXPAND.lower():
        raise bad_request(f"The $expand '{text}' is not supported by this emulator.")
    return True


def with_message_size(document: dict[str, object], size: int) -> dict[str, object]:
    """``document`` with the expanded size property, as Exchange writes it (id in lower-case hex)."""
    return {**document, "singleValueExtendedProperties": [{"id": "Integer 0xe08", "value": str(size)}]}


def parse_count(query: Mapping[str, str]) -> bool:
    text = query.get("$count")
    if text is None:
        return False
    if text.lower() not in ("true", "false"):
        raise bad_request(f"Invalid value '{text}' for $count query option: must be true or false.")
    return text.lower() == "true"


def selected(document: dict[str, object], select: tuple[str, ...]) -> dict[str, object]:
    """``document`` cut down to ``$select`` (``id`` and the ``@odata`` annotations always stay)."""
    if not select:
        return document
    keep = {*select, "id"}
    return {key: value for key, value in document.items() if key in keep or key.startswith("@odata")}
