"""``wicbox serve``: the long-running mode next to the scheduled task. Every mailbox of the account
mode is watched at once (one thread per watch, IMAP IDLE or Graph delta polling through the
adapter contract), a watch that fires runs that mailbox's pass (run/'s pass and filing, not a copy),
the outbox is delivered periodically, WICMan's parameters are read again every minute, and a
heartbeat file tells `status` how each mailbox is watched. SIGTERM / Ctrl+C stop it between batches.

Before a pass it asks one callable whether it may work the mailbox now (the seam for leases).
May use: run, auth, store, logs, config, errors, secret, the adapter contract (adapters.base).
"""
