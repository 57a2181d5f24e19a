"""Limits that keep the parsing of one mail bounded, whatever its sender made of it.

Anyone can send a mail to a filed mailbox, so a mail is data from an adversary. Parsing must end,
in time linear in the mail's size, before the mail is acknowledged; a mail over a limit is still
filed (with its raw bytes, the parts within the limits, and a note in its problems that names the
limit), never left in the mailbox to stop every later run.

:func:`prescan` is a cheap look at the whole mail (a few C-speed passes, no parse): it counts
lines, declared boundaries (an upper bound on the nesting depth) and delimiter-like lines (an
upper bound on the number of parts), and measures the top-level header block. The fast splitter
enforces the depth, part and header limits as it goes; the standard library's parser, whose cost
grows with lines times nesting depth, is only used for a mail whose pre-scan keeps that product
within :attr:`ParseLimits.reference_work` (a deterministic budget in work units, not a clock).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_BOUNDARY_PARAM = re.compile(rb"[Bb][Oo][Uu][Nn][Dd][Aa][Rr][Yy]\s*\*?\s*[0-9]*\*?\s*=")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class ParseLimits:
    """The bounds of one mail's parse (the defaults are the production values)."""

    max_depth: int = 32
    """MIME nesting kept as a tree; a multipart deeper down is kept whole as one attachment."""
    max_parts: int = 1000
    """MIME parts (containers and leaves) split out; the rest stays in the raw bytes only."""
    max_header_bytes: int = 1024 * 1024
    """Header block of one part; header lines past it are ignored."""
    max_header_lines: int = 10_000
    """Header lines of one part (each costs Python work); lines past it are ignored."""
    max_header_value: int = 64 * 1024
    """Characters of one header value (or of one address list) that are decoded."""
    max_params: int = 64
    """Parameters read from one Content-Type or Content-Disposition value."""
    reference_work: int = 400_000
    """Budget of the standard library's parser, in lines times (declared boundaries + 1)."""
    reference_max_bytes: int = 8 * 1024 * 1024
    """Largest irregular mail handed to the standard library's parser."""


DEFAULT_LIMITS = ParseLimits()


@dataclass(frozen=True)
class Prescan:
    """What a cheap look at the bytes tells about a mail before any parse."""

    size: int
    lines: int
    boundaries: int
    delimiter_lines: int
    header_bytes: int

    @property
    def reference_work(self) -> int:
        """The standard library's cost in work units: each line is checked against every open
        boundary, so lines times (boundaries + 1)."""
        return (self.lines + 1) * (self.boundaries + 1)

    def over_reference_budget(self, limits: ParseLimits) -> str | None:
        """Why the standard library's parser may not take this mail, or None when it may."""
        if self.size > limits.reference_max_bytes:
            return f"{self.size} bytes > {limits.reference_max_bytes}"
        if self.reference_work > limits.reference_work:
            return f"{self.reference_work} work units > {limits.reference_work}"
        if self.delimiter_lines > 2 * limits.max_parts + 2:
            return f"{self.delimiter_lines} delimiter lines > {2 * limits.max_parts + 2}"
        return None


def prescan(raw: bytes) -> Prescan:
    """Count what bounds a parse's cost; linear, C-speed passes only, nothing copied."""
    blank = _BLANK_LINE.search(raw)
    return Prescan(
        size=len(raw),
        lines=raw.count(b"\n") + raw.count(b"\r") - raw.count(b"\r\n"),  # a bare CR ends a line too
        boundaries=len(_BOUNDARY_PARAM.findall(raw)),
        delimiter_lines=raw.count(b"\n--") + raw.startswith(b"--"),
        header_bytes=len(raw) if blank is None else blank.start(),
    )
