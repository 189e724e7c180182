"""JSON API: one blueprint per resource, JSON errors only."""
