"""The outbox crash matrix: ``wicbox send`` killed with SIGKILL in the windows that matter.

A cell is one send route (SMTP or Microsoft Graph) on one database (SQLite or PostgreSQL): outbox
rows spread over several sending mailboxes (MULTIPLE mode, each under Exchange's 30 mails a minute),
``wicbox send`` run as a real process and killed before the server accepted a mail, right after it
accepted one (before the SENT update is committed), while an interrupted mail is being looked up, or
at a random moment; then ``wicbox send`` runs until the outbox is empty, and the verdict: no mail lost,
none sent twice, each once in its sender's Sent Items and once per recipient.

tests/test_outbox_crash.py runs the four cells at a small size on pytest's test bed;
``python -m tools.crash_matrix`` runs them at full size on a test bed of its own (same code).
"""
