"""Test-bed fixtures: postgres (filled in by its owner)."""
