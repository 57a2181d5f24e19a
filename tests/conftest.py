"""Shared fixtures. The test bed's servers live in tests/plugins/, one module per server."""

pytest_plugins = [
    "tests.plugins.pki",
    "tests.plugins.idp",
    "tests.plugins.dovecot",
    "tests.plugins.postgres",
    "tests.plugins.smtp",
    "tests.plugins.wic",
    "tests.plugins.graph",
    "tests.plugins.ci",
]
