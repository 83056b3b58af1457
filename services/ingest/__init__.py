"""The ingest service (arrives with its own issue)."""
