"""Protocol adapters (IMAP, Microsoft Graph, SMTP, identity platform), shipped as ``wicbox_bridge.adapters``.

Each adapter implements one contract of :mod:`wicbox_bridge.adapters.base` and translates its
library's errors into :mod:`wicbox_bridge.errors`. Only the CLI builds adapters from configuration;
the core receives them ready-made.
May use: config (parameter names and settings), auth (scopes, AADSTS catalogue), mail (outgoing
messages), errors, secret; never the store, the run or the command line.
"""
