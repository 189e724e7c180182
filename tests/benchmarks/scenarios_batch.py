"""Scenarios 6 and 8: placeholder."""
