"""Sign-in knowledge: OAuth2 scopes per protocol, the identity platform's AADSTS errors with their
fixes, and the accounts a run signs in as (account modes SINGLE, MULTIPLE and MIX).

The msal token providers themselves are adapters (wicbox_bridge.adapters.identity); this part says
what to ask them for and what their refusals mean.
May use: store (the projects' mailboxes), config, errors, secret, the adapter contract (adapters.base).
"""
