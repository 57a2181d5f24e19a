"""The main job, ``wicbox run``: one run at a time per configuration, the per-run cap shared fairly
between the mailboxes, and per mailbox one pass that lists, fetches ahead, parses, routes, files
and acknowledges; then the run's report and exit code.

A mail flows one way: adapter -> mail (parse) -> routing -> store (file) -> one answer back.
May use: auth, store, mail, logs, config, errors, secret, the adapter contract (adapters.base).
"""
