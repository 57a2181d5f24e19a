"""``wicbox check`` and ``wicbox token``: every check, in the order an admin fixes things, each
FAIL with its fix; the token report (account, audience, permissions, expiry).

Nothing here prints or exits: the commands render the results.
May use: runtime, status, schedule, run, send, auth, store, mail, logs, config, errors, secret,
the adapter contract (adapters.base).
"""
