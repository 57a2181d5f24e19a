"""wicbox-bridge: reads WIC mailboxes with OAuth2 and files every mail into the WIC database."""

__version__ = "0.1.0"
