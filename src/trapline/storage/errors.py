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


class StorageFull(StorageError):
    """The database's disk (or its size limit) is full: not worth retrying, and the
    run should stop; what was stored stays intact and a re-run resumes from it."""


DISK_FULL_SQLSTATE = "53100"  # PostgreSQL disk_full ("could not extend file ...")
DISK_FULL_TEXT = ("database or disk is full", "no space left on device", "could not extend file")


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk is full:
    SQLite's SQLITE_FULL, PostgreSQL's DiskFull (SQLSTATE 53100), or OSError ENOSPC."""
    import errno

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno == errno.ENOSPC:
            return True
        if getattr(current, "sqlstate", None) == DISK_FULL_SQLSTATE:
            return True
        if getattr(current, "sqlite_errorname", None) == "SQLITE_FULL":
            return True
        if any(text in str(current).lower() for text in DISK_FULL_TEXT):
            return True
        current = getattr(current, "orig", None) or current.__cause__ or current.__context__
    return False
