"""Band assignment: images whose frequencies lie within a tolerance share a band."""

from __future__ import annotations

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
