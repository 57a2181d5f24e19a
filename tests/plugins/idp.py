"""Test-bed fixtures: idp (filled in by its owner)."""
