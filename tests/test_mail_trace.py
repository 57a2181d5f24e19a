"""The per-mail trace line: fixed fields, values that always split the same way."""

from __future__ import annotations

import json
import re

import pytest

from wicbox_bridge.adapters.base import MailRef
from wicbox_bridge.run.trace import field_value, mail_trace_line, project_field

FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("abc@host", "abc@host"),
        (4711, "4711"),
        (None, "-"),
        ("", "-"),
        ("Postvak IN", '"Postvak IN"'),
        ('a"b', '"a\\"b"'),
        ("x=y", '"x=y"'),
        ("back\\slash", '"back\\\\slash"'),
        ("tab\there", '"tab\\there"'),
        ("één", "één"),
    ],
)
def test_field_values(value: object, written: str) -> None:
    assert field_value(value) == written


@pytest.mark.parametrize(
    ("project_id", "written"),
    [(None, "unassigned"), (1, "ALPHA(1)"), (9, "9")],
)
def test_project_field(project_id: int | None, written: str) -> None:
    assert project_field(project_id, {1: "ALPHA"}) == written


def test_a_line_splits_back_into_its_fields_even_with_a_malformed_message_id() -> None:
    ref = MailRef("wic@klant.be", "Postvak IN", "1700000000", "4711", 123)
    line = mail_trace_line(
        ref,
        message_id='bad id" key=9',
        project="ALPHA(1)",
        outcome="filed",
        mail_id=812,
        routing="recipient alpha@klant.be",
    )
    pairs = FIELD.findall(line)
    fields = dict(pairs)
    assert [name for name, _ in pairs] == [
        "mailbox", "folder", "validity", "key", "message_id", "project", "outcome", "mail_id", "routing"
    ]  # fmt: skip
    assert json.loads(fields["message_id"]) == 'bad id" key=9'
    assert fields["key"] == "4711"
    assert json.loads(fields["folder"]) == "Postvak IN"
    assert json.loads(fields["routing"]) == "recipient alpha@klant.be"


def test_a_graph_mail_has_no_validity() -> None:
    ref = MailRef("wic@klant.be", "Inbox", "", "AAMkAD-immutable", 1)
    line = mail_trace_line(
        ref, message_id=None, project="unassigned", outcome="duplicate", mail_id=None, routing="already filed"
    )
    assert line == (
        "mailbox=wic@klant.be folder=Inbox validity=- key=AAMkAD-immutable message_id=- project=unassigned "
        'outcome=duplicate mail_id=- routing="already filed"'
    )
