"""What the tests share, one module each: ``mailgen`` (the mails tests seed mailboxes with),
``filing`` (the exactly-once assertion and what it reads), ``processes`` (real ``wicbox``
processes), ``secrets`` (the leak scanner), ``waiting`` (the suite's only sleeps: a condition poll
and the crash tests' random moment). The servers themselves and their seeding (``deliver``) are the
fixtures in tests/plugins/."""
