class CheckpointError(ValueError):
    r"""A file that fastrnn will not read as weights.

    Unreadable, corrupt, truncated, inconsistent, or asking to run code; the message
    says what and where. A subclass of ValueError, so ``except ValueError`` catches it.
    Raised by `load_checkpoint`, `load` and the applications' ``from_checkpoint``; no
    other exception type leaves them for a bad file (see the reliability page).

    Examples
    --------
    >>> _ = (tmp / "short.npz").write_bytes(b"PK\x03\x04 truncated")
    >>> try:
    ...     fastrnn.load(tmp / "short.npz")
    ... except fastrnn.CheckpointError as exc:
    ...     print("refused:", type(exc).__name__, isinstance(exc, ValueError))
    refused: CheckpointError True
    """
