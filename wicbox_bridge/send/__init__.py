"""Outgoing mail: WIC's outbox (WICBOX_OUTBOX), delivered exactly once through the Sender contract.

May use: auth, store, mail, config, errors, secret, the adapter contract (adapters.base).
"""
