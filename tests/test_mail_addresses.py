"""The plain-address fast path reads address lists exactly as the standard library does."""

from __future__ import annotations

from email.utils import getaddresses

import pytest

from tests.corpus import require_corpus
from tests.helpers.mailgen import make_mail
from wicbox_bridge.mail.headers import parse_addresses, simple_addresses
from wicbox_bridge.mail.text import header_bytes_to_text
from wicbox_bridge.mail.tree import split_headers_fast

PLAIN = [
    "a@b.c",
    "John Doe <john@x.be>",
    '"Doe, John" <j@x.be>, b@c.d',
    " a@b.c , c@d.e ",
    "=?utf-8?Q?J=C3=A9r=C3=B4me?= <j@x.be>",
    '" spaced " <a@b.c>',
    "a.b.c@d-e.f.gh",
    '""<a@b>',
    "A<a@b>",
    "a@b.c\t,\tX <d@e>",
    "o'brien+tag@example.ie, Zoe's-mailbox <z@example.nl>",
]

NOT_PLAIN = [
    "a@b.c,",  # an empty entry
    "x <a@b.c>,,b@c.d",
    "John Q. Public <a@b.c>",  # a dot in the name
    "John  Doe <a@b.c>",  # two spaces: the standard library joins the words
    "a@b.c d@e.f",  # two addresses without a comma
    "Joe (the boss) <j@x.be>",  # a comment
    "undisclosed-recipients:;",  # a group
    '"Doe \\"J\\"" <j@x.be>',  # a backslash in the quoted name
    "<@route:a@b.c>",
    "a@[127.0.0.1]",
    "Zoë <z@example.nl>",  # not ASCII
    "a@b.",
]


@pytest.mark.parametrize("text", PLAIN)
def test_plain_lists_are_read_as_the_standard_library_reads_them(text: str) -> None:
    assert simple_addresses(text) == getaddresses([text])


@pytest.mark.parametrize("text", NOT_PLAIN)
def test_anything_else_goes_to_the_standard_library(text: str) -> None:
    assert simple_addresses(text) is None


def test_a_generated_mail_takes_the_fast_path() -> None:
    raw = make_mail(1, sender="Jan Peeters <jan@example.be>", to="wic@example.be, Info <info@example.be>")
    headers, _ = split_headers_fast(raw)
    values = dict(headers)
    assert simple_addresses(values["from"]) == [("Jan Peeters", "jan@example.be")]
    assert parse_addresses(values["to"], "To", []) == (("", "wic@example.be"), ("Info", "info@example.be"))


@pytest.mark.corpus
def test_every_corpus_address_header_agrees_with_the_standard_library() -> None:
    taken = 0
    for path in sorted(require_corpus().rglob("*.eml")):
        try:
            headers, _ = split_headers_fast(path.read_bytes())
        except Exception:
            continue
        for name, value in headers:
            if name not in {"from", "to", "cc", "delivered-to", "x-original-to"}:
                continue
            text = header_bytes_to_text(value, name, [], 100_000)
            simple = simple_addresses(text)
            if simple is not None:
                taken += 1
                assert simple == getaddresses([text]), (path.name, text)
    assert taken >= 100  # the fast path is the common one
