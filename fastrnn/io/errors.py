class CheckpointError(ValueError):
    """A file that fastrnn will not read as weights: unreadable, corrupt, truncated,
    inconsistent, or asking to run code. The message says what and where."""
