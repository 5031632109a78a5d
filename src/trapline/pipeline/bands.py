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
        if self.centres:
            distance = np.abs(np.asarray(self.centres) - freq_hz)
            best = int(np.argmin(distance))
            if distance[best] <= self.tolerance_hz:
                return best
        self.centres.append(float(freq_hz))
        return len(self.centres) - 1
