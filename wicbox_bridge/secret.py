"""A string that must never be shown: passwords, client secrets, tokens."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

MASK: Final = "********"


class Secret:
    """Holds a secret value; ``repr``/``str``/format show only a mask.

    Use :meth:`reveal` at the one place that hands the value to a library (msal, imaplib, SMTP).
    Equality compares values so settings objects stay comparable; hashing is by value too.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    def __str__(self) -> str:
        return MASK

    def __format__(self, format_spec: str) -> str:
        return MASK

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values are not picklable")


def mask_values(text: str, values: Iterable[str | Secret | None]) -> str:
    """``text`` with every occurrence of the given secret values replaced by the mask.

    Longer values first, so a value that contains a shorter one is masked whole.
    """
    plain = {value.reveal() if isinstance(value, Secret) else value for value in values}
    for value in sorted((value for value in plain if value), key=len, reverse=True):
        text = text.replace(value, MASK)
    return text


def mask(value: str | None) -> str:
    """What to show for a secret in a listing: the mask when set, empty when not."""
    return MASK if value else ""
