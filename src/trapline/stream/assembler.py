"""Grouping images into timesteps: all bands of one observation time.

A timestep is emitted as soon as it holds the expected number of bands, or when
``max_wait_s`` has passed since its first image arrived (a *partial* timestep), never
later: it is not held back until the next timestep starts. When a newer timestep
completes, older ones still waiting are emitted first (partial), so timesteps always
come out in time order. An image older than the last emitted timestep is dropped as
``late``; a second image of the same band and time is dropped as ``duplicate``; both
are counted in the metrics and logged.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trapline.image import Image
from trapline.stream.metrics import StreamMetrics

log = logging.getLogger(__name__)

TIME_RESOLUTION_S = 1e-3
"""Images whose times differ by less than this belong to the same timestep."""
FREQ_RESOLUTION_HZ = 1.0
"""Images of one timestep whose frequencies differ by less than this are the same band."""


def time_key(time_mjd: float) -> int:
    """Timestep identity: the observation time in milliseconds."""
    return round(time_mjd * 86400.0 / TIME_RESOLUTION_S)


@dataclass
class Timestep:
    """The images of one observation time, sorted by frequency when emitted."""

    key: int
    time_mjd: float
    images: list[Image] = field(default_factory=list)
    first_seen: float = 0.0
    complete: bool = False

    @property
    def n_bands(self) -> int:
        return len(self.images)


class Assembler:
    """Collects images into timesteps and hands finished ones to ``emit``.

    Args:
        emit: called with each finished :class:`Timestep`, in time order.
        bands: images per complete timestep; 0: unknown (every timestep waits).
        max_wait_s: longest wait for missing bands after a timestep's first image.
        metrics: counters to update.
        clock: monotonic clock (seconds), replaceable in tests.
    """

    def __init__(
        self,
        emit: Callable[[Timestep], None],
        bands: int = 0,
        max_wait_s: float = 2.0,
        metrics: StreamMetrics | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.emit = emit
        self.bands = bands
        self.max_wait_s = max_wait_s
        self.metrics = metrics or StreamMetrics()
        self.clock = clock
        self._open: dict[int, Timestep] = {}
        self._last_key: int | None = None

    @property
    def open_timesteps(self) -> int:
        return len(self._open)

    def add(self, image: Image) -> None:
        """Add one image; emits its timestep (and older open ones) if it completes."""
        if not math.isfinite(image.time_mjd):
            self.metrics.rejected["no_time"] += 1
            log.warning("stream: image without an observation time rejected")
            return
        key = time_key(image.time_mjd)
        if self._last_key is not None and key < self._last_key:
            self._drop(image, "late", "older than the last timestep already processed")
            return
        step = self._open.get(key)
        if step is None:
            if key == self._last_key:
                # A straggler band of the timestep just emitted: it goes on its own.
                step = Timestep(key, image.time_mjd, [image], self.clock())
                self._emit(step)
                return
            step = self._open[key] = Timestep(key, image.time_mjd, first_seen=self.clock())
        if any(abs(im.freq_hz - image.freq_hz) < FREQ_RESOLUTION_HZ for im in step.images):
            self._drop(image, "duplicate", "a second image of the same band and time")
            return
        step.images.append(image)
        if self.bands and step.n_bands >= self.bands:
            step.complete = True
            for older in sorted(k for k in self._open if k < key):
                self._emit(self._open.pop(older))
            self._emit(self._open.pop(key))

    def poll(self, now: float | None = None) -> float | None:
        """Emit timesteps that waited ``max_wait_s``; returns seconds until the next
        deadline (None when nothing is waiting)."""
        now = self.clock() if now is None else now
        expired = [k for k, s in self._open.items() if now - s.first_seen >= self.max_wait_s]
        if expired:
            newest = max(expired)
            for key in sorted(k for k in self._open if k <= newest):
                self._emit(self._open.pop(key))
        if not self._open:
            return None
        first = min(s.first_seen for s in self._open.values())
        return max(0.0, first + self.max_wait_s - now)

    def flush(self) -> None:
        """Emit everything still waiting (at shutdown)."""
        for key in sorted(self._open):
            self._emit(self._open.pop(key))

    def _emit(self, step: Timestep) -> None:
        step.images.sort(key=lambda im: im.freq_hz)
        self._last_key = step.key if self._last_key is None else max(self._last_key, step.key)
        if step.complete:
            self.metrics.timesteps_complete += 1
        else:
            self.metrics.timesteps_partial += 1
            if self.bands:
                log.info(
                    "stream: timestep %.6f emitted with %d of %d bands",
                    step.time_mjd,
                    step.n_bands,
                    self.bands,
                )
        self.emit(step)

    def _drop(self, image: Image, reason: str, why: str) -> None:
        self.metrics.dropped[reason] += 1
        log.warning(
            "stream: dropped image at MJD %.6f, %.3f MHz (%s): %s",
            image.time_mjd,
            image.freq_hz / 1e6,
            reason,
            why,
        )
