"""Reading an access token's non-secret claims."""

from __future__ import annotations

from collections.abc import Mapping


def claim_list(claims: Mapping[str, object], name: str) -> list[str]:
    """A claim as a list: ``scp`` is space-separated, ``roles`` a list; missing: empty."""
    value = claims.get(name)
    if isinstance(value, str):
        return value.split()
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return []
