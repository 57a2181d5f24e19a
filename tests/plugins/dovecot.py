"""Test-bed fixtures: dovecot (filled in by its owner)."""
