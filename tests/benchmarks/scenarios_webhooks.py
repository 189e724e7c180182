"""Scenario 7: placeholder."""
