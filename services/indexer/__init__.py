"""The indexer service (arrives with its own issue)."""
