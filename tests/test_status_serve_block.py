"""The serve block of `wicbox status`: a heartbeat older than 30 s means serve is not running."""

from __future__ import annotations

import datetime as dt

from wicbox_bridge.status.serve_block import STALE_AFTER, serve_json, serve_lines, serve_status

BEAT_AT = dt.datetime(2026, 3, 2, 9, 0, 0, tzinfo=dt.timezone.utc)
DOCUMENT = {
    "host": "wic-app-01",
    "pid": 4242,
    "started_at": "2026-03-02T08:00:00+00:00",
    "at": BEAT_AT.isoformat(),
    "mailboxes": [
        {
            "label": "global",
            "mailbox": "wic@klant.example",
            "how": "IDLE",
            "last_pass_at": "2026-03-02T08:59:50+00:00",
            "filed_total": 7,
            "last_latency_s": 1.25,
            "error": None,
            "lease_held": True,
        },
        {"label": "ALPHA", "mailbox": "alpha@klant.example", "how": "failing", "error": "sign-in refused"},
        {"label": "BETA", "mailbox": "beta@klant.example", "how": "IDLE", "lease_held": False},
    ],
}


def test_a_fresh_heartbeat_is_running_with_each_mailbox() -> None:
    status = serve_status(DOCUMENT, BEAT_AT + dt.timedelta(seconds=4))
    lines = serve_lines(status, BEAT_AT + dt.timedelta(seconds=4))
    assert lines[0] == "Serve: running (pid 4242 on wic-app-01), last heartbeat 4 s ago"
    assert lines[1] == (
        "  global (wic@klant.example): IDLE; last pass 14 s ago; filed 7; last arrival-to-filed 1.2 s; "
        "lease held here"
    )
    assert lines[2].endswith("last pass never; filed 0; last arrival-to-filed -; last error: sign-in refused")
    document = serve_json(status)
    assert document is not None
    assert document["alive"] is True
    assert lines[3].endswith("; lease held elsewhere (not worked here)")
    assert [m["watched_by"] for m in document["mailboxes"]] == ["IDLE", "failing", "IDLE"]
    assert [m["lease_held"] for m in document["mailboxes"]] == [True, None, False]
    assert document["mailboxes"][0]["last_latency_seconds"] == 1.25


def test_a_heartbeat_older_than_30_s_says_serve_is_not_running_and_how_to_fix_it() -> None:
    now = BEAT_AT + STALE_AFTER + dt.timedelta(seconds=1)
    status = serve_status(DOCUMENT, now)
    assert status is not None
    assert status.alive is False
    head = serve_lines(status, now)[0]
    assert head.startswith("Serve: NOT RUNNING: the last heartbeat (pid 4242 on wic-app-01) is 31 s old")
    assert "wicbox schedule start --serve" in head
    document = serve_json(status)
    assert document is not None
    assert document["alive"] is False
    assert document["heartbeat_age_seconds"] == 31


def test_no_heartbeat_shows_nothing() -> None:
    assert serve_status(None, BEAT_AT) is None
    assert serve_status({"at": "not a time"}, BEAT_AT) is None
    assert serve_lines(None, BEAT_AT) == []
    assert serve_json(None) is None
