"""The producer's buffer for a broker that cannot be reached: messages kept in
publication order, in memory up to a size and then in a spool file, bounded in all."""

from __future__ import annotations

import os
import pickle
import tempfile
from collections import deque
from pathlib import Path
from typing import Any

__all__ = ["Outbox"]


class Outbox:
    """A FIFO of ``(channel, fields)`` entries (``fields``: the broker's encoded entry).

    The first ``memory_bytes`` are held in memory; past that, entries are appended to a
    file in ``spool_dir`` (default: the system's temporary folder) and read back in order
    once those in memory are gone. ``max_bytes`` bounds memory and file together:
    :meth:`full` says when the producer has to wait. Sizes are of the encoded fields
    (bytes)."""

    def __init__(self, memory_bytes: int = 64 * 2**20, max_bytes: int = 2**30,
                 spool_dir: str | os.PathLike | None = None):
        self.memory_bytes = memory_bytes
        self.max_bytes = max_bytes
        self.spool_dir = Path(spool_dir) if spool_dir else None
        self._memory: deque[tuple[str, dict[str, Any], int]] = deque()
        self._memory_size = 0
        self._spool: Any = None  # the open spool file (write at the end, read at _offset)
        self._spool_path: Path | None = None
        self._offset = 0
        self._peeked = (0, 0)  # offset after, and size of, the entry peek() read
        self._spooled = 0  # entries in the file not read back yet
        self._spool_size = 0
        self.spooled_total = 0  # entries that ever went to the file

    def __len__(self) -> int:
        return len(self._memory) + self._spooled

    @property
    def nbytes(self) -> int:
        """Bytes held, in memory and in the spool file."""
        return self._memory_size + self._spool_size

    @property
    def spooled(self) -> int:
        """Entries waiting in the spool file."""
        return self._spooled

    @property
    def spool_path(self) -> Path | None:
        return self._spool_path

    def full(self) -> bool:
        return self.nbytes >= self.max_bytes

    def append(self, channel: str, fields: dict[str, Any]) -> None:
        """Add an entry after all the others."""
        size = sum(len(v) for v in fields.values())
        if self._spooled or self._memory_size + size > self.memory_bytes:
            self._write(channel, fields, size)
        else:
            self._memory.append((channel, fields, size))
            self._memory_size += size

    def peek(self) -> tuple[str, dict[str, Any]]:
        """The oldest entry (IndexError when empty)."""
        if self._memory:
            channel, fields, _ = self._memory[0]
            return channel, fields
        if not self._spooled:
            raise IndexError("the outbox is empty")
        self._spool.seek(self._offset)
        channel, fields, size = pickle.load(self._spool)
        self._peeked = (self._spool.tell(), size)
        return channel, fields

    def pop(self) -> None:
        """Remove the oldest entry (after :meth:`peek`, once it was published)."""
        if self._memory:
            _, _, size = self._memory.popleft()
            self._memory_size -= size
            return
        self._offset, size = self._peeked
        self._spooled -= 1
        self._spool_size -= size
        if not self._spooled:  # read back entirely: start afresh
            self.close()

    def _write(self, channel: str, fields: dict[str, Any], size: int) -> None:
        if self._spool is None:
            if self.spool_dir is not None:
                self.spool_dir.mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix="trapline-outbox-", suffix=".spool",
                                        dir=self.spool_dir)
            self._spool = os.fdopen(fd, "w+b")
            self._spool_path = Path(name)
            self._offset = 0
        self._spool.seek(0, os.SEEK_END)
        pickle.dump((channel, fields, size), self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        self._spool.flush()
        self._spooled += 1
        self._spool_size += size
        self.spooled_total += 1

    def close(self) -> None:
        """Remove the spool file (what it held is lost if not published)."""
        if self._spool is not None:
            self._spool.close()
            if self._spool_path is not None:
                self._spool_path.unlink(missing_ok=True)
        self._spool = None
        self._spool_path = None
        self._offset = self._spooled = self._spool_size = 0
