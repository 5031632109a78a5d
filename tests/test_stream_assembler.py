"""Timestep assembly: complete by band count, partial after the wait, never held back."""

from __future__ import annotations

import numpy as np
from astropy.wcs import WCS

from trapline.image import Beam, Image
from trapline.stream.assembler import Assembler


def img(t_s: float, band: int) -> Image:
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [0.0, 0.0]
    wcs.wcs.cdelt = [-0.1, 0.1]
    return Image(
        np.zeros((4, 4), np.float32), wcs, Beam(0.3, 0.3, 0), 60000 + t_s / 86400, 50e6 + band * 1e6
    )


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(bands=3, wait=2.0):
    out, clock = [], Clock()
    asm = Assembler(out.append, bands=bands, max_wait_s=wait, clock=clock)
    return asm, out, clock


def test_complete_timestep_is_emitted_at_once_sorted_by_frequency():
    asm, out, _ = make()
    for band in (2, 0):
        asm.add(img(0, band))
    assert out == []
    asm.add(img(0, 1))
    assert len(out) == 1 and out[0].complete
    assert [im.freq_hz for im in out[0].images] == [50e6, 51e6, 52e6]
    assert asm.metrics.timesteps_complete == 1 and asm.open_timesteps == 0


def test_partial_timestep_after_max_wait_without_the_next_timestep():
    asm, out, clock = make(wait=2.0)
    asm.add(img(0, 0))
    asm.add(img(0, 1))
    clock.now = 1.0
    assert asm.poll() == 1.0
    assert out == []
    clock.now = 2.0
    assert asm.poll() is None  # emitted, nothing waits any more
    assert len(out) == 1 and not out[0].complete and out[0].n_bands == 2
    assert asm.metrics.timesteps_partial == 1


def test_newer_complete_timestep_flushes_older_partial_first_in_time_order():
    asm, out, _ = make(bands=2)
    asm.add(img(0, 0))
    asm.add(img(1, 0))
    asm.add(img(1, 1))
    assert [s.key for s in out] == sorted(s.key for s in out)
    assert [s.complete for s in out] == [False, True]


def test_late_duplicate_and_straggler_images():
    asm, out, clock = make(bands=2, wait=1.0)
    asm.add(img(5, 0))
    asm.add(img(5, 0))  # duplicate band
    assert asm.metrics.dropped["duplicate"] == 1
    clock.now = 1.0
    asm.poll()
    assert len(out) == 1
    asm.add(img(5, 1))  # straggler of the timestep just emitted: processed on its own
    assert len(out) == 2 and out[1].n_bands == 1
    asm.add(img(4, 0))  # older than what was processed
    assert asm.metrics.dropped["late"] == 1
    assert len(out) == 2


def test_unknown_band_count_always_waits_then_flush():
    asm, out, clock = make(bands=0, wait=1.0)
    for band in range(5):
        asm.add(img(0, band))
    assert out == []
    asm.add(img(1, 0))
    asm.flush()
    assert [s.n_bands for s in out] == [5, 1]
