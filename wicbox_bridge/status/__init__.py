"""``wicbox status``: is mail flowing? Last runs, backlog, quarantine and credentials, gathered
from the database alone (no mail server), rendered as text or JSON.

May use: auth, store, config, errors, secret.
"""
