"""The listener's overflow: timesteps that do not fit in the in-memory queue wait in
files (pickles), oldest first, within a size bound."""

from __future__ import annotations

import contextlib
import os
import pickle
import tempfile
from collections import deque
from pathlib import Path

from trapline.stream.assembler import Timestep

__all__ = ["Spool"]


class Spool:
    """A FIFO of timesteps on disk: one pickle file per timestep in a folder of its own
    made (when first needed) in ``parent`` (default: the system's temporary folder),
    at most ``max_bytes`` of files (0: no spool). Files are removed as they are read
    back, the folder when the spool is closed."""

    def __init__(self, parent: str | os.PathLike | None = None, max_bytes: int = 2**31):
        self.max_bytes = max_bytes
        self.parent = parent
        self._directory: Path | None = None
        self._files: deque[tuple[Path, int]] = deque()  # (file, bytes), oldest first
        self._seq = 0
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self._files)

    @property
    def directory(self) -> Path:
        if self._directory is None:
            if self.parent is not None:
                Path(self.parent).mkdir(parents=True, exist_ok=True)
            self._directory = Path(tempfile.mkdtemp(prefix="trapline-spool-", dir=self.parent))
        return self._directory

    def encode(self, step: Timestep) -> bytes:
        return pickle.dumps(step, protocol=pickle.HIGHEST_PROTOCOL)

    def fits(self, data: bytes) -> bool:
        """There is room for an encoded timestep."""
        return self.nbytes + len(data) <= self.max_bytes

    def append(self, data: bytes) -> None:
        """Add an encoded timestep (see :meth:`encode`) after the others."""
        self._seq += 1
        path = self.directory / f"{self._seq:012d}.pickle"
        path.write_bytes(data)
        self._files.append((path, len(data)))
        self.nbytes += len(data)

    def pop(self) -> Timestep:
        """The oldest timestep, its file removed (IndexError when empty)."""
        path, size = self._files.popleft()
        try:
            step = pickle.loads(path.read_bytes())
        finally:
            path.unlink(missing_ok=True)
            self.nbytes -= size
        return step

    def close(self) -> None:
        """Remove what is left (and the folder, if the spool made it)."""
        while self._files:
            path, _ = self._files.popleft()
            path.unlink(missing_ok=True)
        self.nbytes = 0
        if self._directory is not None:
            with contextlib.suppress(OSError):
                self._directory.rmdir()
            self._directory = None
