"""Routing tables: recipient mailbox first (To, Cc, Delivered-To, X-Original-To), then [CODE]."""

from __future__ import annotations

import pytest

from wicbox_bridge.mail.parse import parse_mail
from wicbox_bridge.run.routing import RoutableProject, mailbox_address, route_mail

PROJECTS = (
    RoutableProject(1, "ALPHA", "project-alpha@klant.example"),
    RoutableProject(2, "BETA", "Project Beta <Project-Beta@Klant.Example>"),
    RoutableProject(3, "GAMMA", None),
    RoutableProject(4, "DELTA", "  "),
)


def mail(headers: str) -> bytes:
    return (headers.strip().replace("\n", "\r\n") + "\r\n\r\nbody\r\n").encode()


ROUTING_CASES = [
    # headers, expected project, words the reason must contain
    (
        "To: project-alpha@klant.example\nSubject: x",
        1,
        ["recipient project-alpha@klant.example (To)", "ALPHA"],
    ),
    ("To: Iemand <PROJECT-ALPHA@KLANT.EXAMPLE>\nSubject: x", 1, ["(To)"]),
    ("To: project-beta@klant.example\nSubject: x", 2, ["BETA"]),  # mailbox configured with display name
    ('To: jan@klant.example\nCc: "Beta, project" <project-beta@klant.example>\nSubject: x', 2, ["(Cc)"]),
    ("Delivered-To: project-alpha@klant.example\nTo: list@klant.example\nSubject: x", 1, ["(Delivered-To)"]),
    ("X-Original-To: project-beta@klant.example\nTo: list@klant.example\nSubject: x", 2, ["(X-Original-To)"]),
    # several recipients: To before Cc, first address in a header first
    (
        "To: project-beta@klant.example, project-alpha@klant.example\nSubject: x",
        2,
        ["also addressed", "ALPHA"],
    ),
    ("Cc: project-alpha@klant.example\nTo: project-beta@klant.example\nSubject: x", 2, ["(To)", "ALPHA"]),
    ("Delivered-To: project-alpha@klant.example\nCc: project-beta@klant.example\nSubject: x", 2, ["(Cc)"]),
    # recipient wins over subject
    ("To: project-alpha@klant.example\nSubject: RE: [BETA] vraag", 1, ["ALPHA"]),
    # subject codes
    ("To: jan@klant.example\nSubject: RE: [ALPHA] vraag", 1, ["subject carries [ALPHA]"]),
    ("To: jan@klant.example\nSubject: vraag over [gamma]", 3, ["[GAMMA]"]),
    ("To: jan@klant.example\nSubject: [ Gamma ] vraag", 3, ["[GAMMA]"]),
    ("To: jan@klant.example\nSubject: [BETA][ALPHA] twee", 2, ["first code", "ALPHA"]),
    ("To: jan@klant.example\nSubject: [onbekend] en dan [ALPHA]", 1, ["[ALPHA]"]),
    ("To: jan@klant.example\nSubject: =?utf-8?q?=5BALPHA=5D_=C3=A9=C3=A9n?=", 1, ["[ALPHA]"]),
    # unassigned, never dropped
    ("To: jan@klant.example\nSubject: ALPHA zonder haken", None, ["unassigned"]),
    ("To: jan@klant.example\nSubject: [ALPHA", None, ["unassigned"]),
    ("To: jan@klant.example", None, ["unassigned"]),
    ("To: project-alpha@klant.example.evil\nSubject: x", None, ["unassigned"]),
    ('To: "project-alpha@klant.example" <jan@klant.example>\nSubject: x', None, ["unassigned"]),
]


@pytest.mark.parametrize(("headers", "expected", "reason_words"), ROUTING_CASES)
def test_route_mail(headers: str, expected: int | None, reason_words: list[str]) -> None:
    decision = route_mail(parse_mail(mail(headers)), PROJECTS)
    assert decision.project_id == expected
    for word in reason_words:
        assert word in decision.reason


def test_no_projects_means_unassigned() -> None:
    decision = route_mail(parse_mail(mail("To: project-alpha@klant.example\nSubject: [ALPHA]")), [])
    assert decision.project_id is None


def test_shared_mailbox_first_configured_wins() -> None:
    projects = [
        RoutableProject(7, "ONE", "shared@klant.example"),
        RoutableProject(8, "TWO", "shared@klant.example"),
    ]
    decision = route_mail(parse_mail(mail("To: shared@klant.example")), projects)
    assert decision.project_id == 7
    assert "shared by 2 projects" in decision.reason


@pytest.mark.parametrize(
    ("configured", "expected"),
    [
        ("a@b.example", "a@b.example"),
        ("Naam <A@B.Example>", "a@b.example"),
        ("  A@B.EXAMPLE ", "a@b.example"),
        ("", None),
        (None, None),
    ],
)
def test_mailbox_address(configured: str | None, expected: str | None) -> None:
    assert mailbox_address(configured) == expected
