"""Band assignment: images whose frequencies lie within a tolerance share a band; and
the bounded per-band windows of recent values that quality control and calibration
keep (stored with the run, so that a resumed run decides as an uninterrupted one)."""

from __future__ import annotations

from collections import deque

import numpy as np


class BandAssigner:
    """Assigns images to frequency bands: a frequency within ``tolerance_hz`` of a known
    band's centre belongs to it, else it starts a new band (numbered in order seen)."""

    def __init__(self, tolerance_hz: float, centres: list[float] | None = None):
        self.tolerance_hz = tolerance_hz
        self.centres: list[float] = list(centres or [])

    def band_of(self, freq_hz: float) -> int:
        """The band of ``freq_hz`` (Hz), a new one if no band is near it."""
        found = self.find(freq_hz)
        if found >= 0:
            return found
        self.centres.append(float(freq_hz))
        return len(self.centres) - 1

    def find(self, freq_hz: float) -> int:
        """The known band of ``freq_hz`` (Hz), or -1; unlike :meth:`band_of`, this never
        adds a band, so asking in any order changes nothing."""
        if self.centres:
            distance = np.abs(np.asarray(self.centres) - freq_hz)
            best = int(np.argmin(distance))
            if distance[best] <= self.tolerance_hz:
                return best
        return -1


class BandWindows:
    """The last ``size`` values added per band."""

    def __init__(self, size: int):
        self.size = size
        self._values: dict[int, deque[float]] = {}

    def values(self, band: int) -> list[float]:
        """The band's values, oldest first."""
        return list(self._values.get(band, ()))

    def add(self, band: int, value: float) -> None:
        self._values.setdefault(band, deque(maxlen=self.size)).append(float(value))

    def dump(self) -> dict[str, list[float]]:
        return {str(band): list(values) for band, values in self._values.items()}

    def load(self, stored: dict[str, list[float]]) -> None:
        for band, values in stored.items():
            self._values[int(band)] = deque((float(v) for v in values), maxlen=self.size)
