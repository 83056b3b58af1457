"""The detector service (arrives with its own issue)."""
