"""Which of many mailboxes have mail waiting, in ``$batch`` requests across mailboxes (Graph).

A MULTIPLE run over hundreds of project mailboxes opens a session per mailbox: a folder look-up
and a listing each, most of them answering "nothing new". With application permissions one token
reads every mailbox, so the listings of up to 20 mailboxes go in one ``$batch``
(``GET /users/{mailbox}/mailFolders/inbox/messages?$select=id&$top=1``), each answered with its own
status; a throttled one (429 or 503) is repeated alone after its Retry-After. Each mailbox is the
only request of its batch in its mailbox, so Exchange's 4 concurrent requests per mailbox hold.

The answer per mailbox is True (mail waiting), False (nothing waiting) or None (unknown: any other
answer, e.g. a missing permission, which the mailbox's own session then reports with its fix).
Only the well-known Inbox as source folder can be listed without looking the folder up first;
for any other source folder, and with delegated permissions (one mailbox per token), every answer
is None and the run opens every mailbox as before.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from urllib.parse import quote, urlencode

from wicbox_bridge.adapters import graph_errors as errors
from wicbox_bridge.adapters.graph_folders import WELL_KNOWN_INBOX, folder_levels
from wicbox_bridge.adapters.graph_http import BatchCall, GraphHttp
from wicbox_bridge.adapters.graph_settings import GraphSettings
from wicbox_bridge.config.params import AfterProcess

log = logging.getLogger("wicbox.graph")

UNREAD = "isRead eq false"


def can_survey(settings: GraphSettings, claims: Mapping[str, object]) -> bool:
    """Application permissions and the Inbox as source folder."""
    levels = folder_levels(settings.source_folder)
    inbox = len(levels) == 1 and levels[0].casefold() == WELL_KNOWN_INBOX
    return inbox and not errors.is_delegated(claims)


def listing_url(settings: GraphSettings, mailbox: str) -> str:
    """The first waiting mail of the mailbox's Inbox (only unread ones with AFTERPROCESS SEEN)."""
    query = {"$select": "id", "$top": "1"}
    if settings.after_process is AfterProcess.SEEN:
        query["$filter"] = UNREAD
    encoded = urlencode(query, quote_via=quote)
    return f"/users/{quote(mailbox, safe='@')}/mailFolders/{WELL_KNOWN_INBOX}/messages?{encoded}"


def survey(http: GraphHttp, settings: GraphSettings, mailboxes: Sequence[str]) -> list[bool | None]:
    """Per mailbox (in order): mail waiting, nothing waiting, or unknown; see the module docstring."""
    if not mailboxes or not can_survey(settings, http.claims()):
        return [None] * len(mailboxes)
    calls = [BatchCall(str(index), "GET", listing_url(settings, box)) for index, box in enumerate(mailboxes)]
    outcomes = http.batch(calls, "listing the Inbox of every mailbox", chained=False)
    answers: list[bool | None] = []
    for call in calls:
        outcome = outcomes.get(call.key)
        if outcome is None or not 200 <= outcome.status < 300 or not isinstance(outcome.body, dict):
            answers.append(None)
            continue
        answers.append(bool(outcome.body.get("value")))
    log.info(
        "%d of %d mailbox(es) have mail waiting, %d unknown (listed in $batch)",
        answers.count(True),
        len(answers),
        answers.count(None),
    )
    return answers
