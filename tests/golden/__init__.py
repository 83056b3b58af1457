"""Golden encoded messages (see make.py)."""
