"""Test-bed fixtures: smtp (filled in by its owner)."""
