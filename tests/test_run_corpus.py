"""Every mail of the shared corpus of real-world and malformed mails goes through `wicbox run`:
filed with RAW_MIME byte-identical to what the server holds, or quarantined with a reason. No crash,
no loss, on SQLite and on PostgreSQL over ODBC."""

from __future__ import annotations

import hashlib

import pytest

from tests.corpus import require_corpus
from tests.helpers.mailgen import to_crlf
from tests.plugins.wic import Mailroom

pytestmark = [pytest.mark.corpus, pytest.mark.parametrize("wic_backend", ["sqlite", "postgresql-odbc"])]


def test_the_whole_corpus_is_filed_byte_for_byte(mailroom: Mailroom) -> None:
    files = sorted(require_corpus().rglob("*.eml"))
    assert len(files) >= 100
    raws = [to_crlf(path.read_bytes()) for path in files]
    mailroom.deliver(raws)
    stored = [message.raw for message in mailroom.messages("INBOX")]
    assert len(stored) == len(raws)

    for _ in range(2):  # more mails than the default cap of 100: the backlog drains over two runs
        result = mailroom.wic.cli("run")
        assert result.exit_code == 0, result.output

    filed = mailroom.filed()
    by_hash = {row.sha256: row for row in filed}
    distinct = {hashlib.sha256(raw).hexdigest(): raw for raw in stored}
    assert set(by_hash) == set(distinct), "every distinct mail is filed exactly once"
    for sha256, row in by_hash.items():
        if row.status == "FILED":
            assert row.raw == distinct[sha256]
        else:
            assert row.status == "QUARANTINED"
            assert row.error
    assert mailroom.messages("INBOX") == []
    moved = mailroom.messages("WICBOX/Processed") + mailroom.messages("WICBOX/Failed")
    assert sorted(message.raw for message in moved) == sorted(stored)


def test_attachments_and_bodies_of_corpus_mails_are_stored(mailroom: Mailroom) -> None:
    root = require_corpus()
    raw = to_crlf((root / "attachment_emails" / "attachment_pdf.eml").read_bytes())
    japanese = to_crlf((root / "multi_charset" / "japanese_iso_2022.eml").read_bytes())
    mailroom.deliver([raw, japanese])
    assert mailroom.wic.cli("run").exit_code == 0
    with mailroom.wic.store() as store:
        attachments = store.query(
            "SELECT A.FILENAME, A.CONTENT_TYPE, A.SIZE_BYTES, A.CONTENT FROM WICBOX_ATTACHMENT A "
            "JOIN WICBOX_MAIL M ON M.MAIL_ID = A.MAIL_ID ORDER BY A.ATTACHMENT_ID"
        )
        subjects = [row[0] for row in store.query("SELECT SUBJECT FROM WICBOX_MAIL ORDER BY MAIL_ID")]
    pdfs = [row for row in attachments if row[1] == "application/pdf"]
    assert pdfs, attachments
    filename, _type, size, content = pdfs[0]
    assert filename.endswith(".pdf")
    assert size == len(content) > 0
    assert content.startswith(b"%PDF")
    assert any(ord(char) > 0x3000 for char in subjects[1] or ""), subjects
