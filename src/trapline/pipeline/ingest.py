"""Finding images, reading their metadata, and grouping them into timesteps and bands."""

from __future__ import annotations

import glob
import hashlib
import logging
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trapline.errors import ImageError, TraplineError
from trapline.geometry import separation_deg
from trapline.image import Image
from trapline.io.fits import _frequency, _time_mjd, image_hdu

FITS_SUFFIXES = (".fits", ".fit", ".fts")
# gzip-compressed files and fpack's tile-compressed files (astropy reads both).
IMAGE_SUFFIXES = (
    *FITS_SUFFIXES,
    *(s + z for s in FITS_SUFFIXES for z in (".gz", ".fz")),
    ".image",
)

log = logging.getLogger(__name__)


def find_images(inputs: Iterable[str]) -> list[str]:
    """Expand files, folders (searched recursively) and glob patterns into absolute
    image paths.

    CASA images are directories ending in ``.image`` (or holding a ``table.dat``).
    A symlink loop is skipped with a warning. Raises TraplineError for an input that
    matches nothing.
    """
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir() and not _is_casa(path):
            matches = sorted(
                str(p) for p in path.rglob("*")
                if p.name.lower().endswith(IMAGE_SUFFIXES)
                and not _is_loop(p) and (p.is_file() or _is_casa(p))
            )
        elif path.exists():
            matches = [str(path)]
        else:
            matches = sorted(p for p in glob.glob(item) if not _is_loop(Path(p)))
            if not matches and _is_loop(path, warn=False):
                continue  # a loop given by name: warned about, nothing to run
        if not matches:
            raise TraplineError(f"no images found at {item!r}")
        found.extend(matches)
    # absolute, so the stored paths still name the files from another folder (web)
    return list(dict.fromkeys(os.path.abspath(f) for f in found))  # keep order, no repeats


def _is_loop(path: Path, warn: bool = True) -> bool:
    """Whether ``path`` is a symlink that leads back to itself (logged once if so)."""
    if not path.is_symlink():
        return False
    try:
        path.resolve(strict=True)
    except FileNotFoundError:
        return False  # dangling: left to the reader, which rejects it as unreadable
    except (RuntimeError, OSError):  # RuntimeError before Python 3.13, ELOOP after
        if warn:
            log.warning("skipping %s: symlink loop", path)
        return True
    return False


def _is_casa(path: Path) -> bool:
    return path.is_dir() and (path / "table.dat").exists()


def image_key(path: str, time_mjd: float, freq_hz: float) -> str:
    """Stable identity of an image across runs: its path, time and frequency."""
    time_part = "nan" if not math.isfinite(time_mjd) else f"{time_mjd:.9f}"
    text = f"{Path(path).resolve() if path else ''}|{time_part}|{freq_hz:.3f}"
    return hashlib.sha1(text.encode()).hexdigest()


def unreadable_key(path: str) -> str:
    return hashlib.sha1(f"unreadable|{Path(path).resolve()}".encode()).hexdigest()


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


@dataclass
class Footprint:
    """Centre (deg) and radius (deg) of the circle holding an image's valid pixels."""

    ra: float
    dec: float
    radius_deg: float


def footprint(image: Image) -> Footprint:
    """The circle around the image centre that holds all its valid pixels."""
    ny, nx = image.shape
    ra, dec = image.pixel_to_sky(np.array([(nx - 1) / 2]), np.array([(ny - 1) / 2]))
    corners_x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) / 2, 0, nx - 1, (nx - 1) / 2])
    corners_y = np.array([0, 0, ny - 1, ny - 1, 0, (ny - 1) / 2, (ny - 1) / 2, ny - 1])
    with np.errstate(invalid="ignore"):
        cra, cdec = image.pixel_to_sky(corners_x, corners_y)

    sep = separation_deg(ra[0], dec[0], cra, cdec)
    radius = float(np.nanmax(sep)) if np.isfinite(sep).any() else 180.0
    if not np.isfinite(sep).all():
        radius = 90.0  # all-sky images: corners beyond the horizon have no position
    return Footprint(float(ra[0]), float(dec[0]), radius)


def describe_error(exc: Exception) -> tuple[str, str]:
    """(reason code, message) of a failure to read or measure an image."""
    if isinstance(exc, ImageError):
        return exc.reason, str(exc)
    return "error", f"{type(exc).__name__}: {exc}"


def header_time_freq(path: str) -> tuple[float, float]:
    """Observation time (MJD) and frequency (Hz) from a FITS header only (no pixels);
    NaN when unreadable or not FITS (CASA images are read in full later)."""
    from astropy.io import fits

    try:
        with fits.open(path) as hdul:
            header = image_hdu(hdul, path).header
        integration = float(header.get("EXPTIME", header.get("INTTIME", 0.0)) or 0.0)
        return _time_mjd(header, integration), _frequency(header)
    except Exception:  # noqa: BLE001 - sorting only; the reader reports the error later
        return float("nan"), float("nan")
