"""Storage errors with messages meant for the operator reading the log."""

from __future__ import annotations

from trapline.errors import TraplineError


class StorageError(TraplineError):
    """The database cannot be reached or used (server gone, schema missing...).

    The message names the database (password hidden) and the cause. ``transient`` is
    True when the database was unreachable or busy (worth trying again later: keep the
    results buffered), False when the request itself failed.
    """

    def __init__(self, message: str, transient: bool = False):
        super().__init__(message)
        self.transient = transient
