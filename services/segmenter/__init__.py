"""The segmenter service (arrives with its own issue)."""
