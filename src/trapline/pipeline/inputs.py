"""The pipeline's input images: finding them (files, folders, glob patterns, CASA
image directories), their time and frequency from the header alone, and their identity
across runs."""

from __future__ import annotations

import glob
import hashlib
import logging
import math
import os
from collections.abc import Iterable
from pathlib import Path

from astropy.io import fits

from trapline.errors import TraplineError
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


def header_time_freq(path: str) -> tuple[float, float]:
    """Observation time (MJD) and frequency (Hz) from a FITS header only (no pixels);
    NaN when unreadable or not FITS (CASA images are read in full later)."""
    try:
        with fits.open(path) as hdul:
            header = image_hdu(hdul, path).header
        integration = float(header.get("EXPTIME", header.get("INTTIME", 0.0)) or 0.0)
        return _time_mjd(header, integration), _frequency(header)
    except Exception:  # noqa: BLE001 - sorting only; the reader reports the error later
        return float("nan"), float("nan")
