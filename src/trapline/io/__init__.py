"""Image readers: FITS (always) and CASA images (with python-casacore)."""

from __future__ import annotations

from pathlib import Path

from trapline.image import Beam, Image
from trapline.io.casa import read_casa
from trapline.io.fits import read_fits, write_fits

__all__ = ["read_casa", "read_fits", "read_image", "write_fits"]


def read_image(path: str | Path, beam: Beam | None = None,
               time_mjd: float | None = None) -> Image:
    """Read a FITS file or a CASA image directory (needs python-casacore); ``beam`` and
    ``time_mjd`` as for :func:`read_fits`."""
    p = Path(path)
    if p.is_dir():
        return read_casa(p, beam=beam, time_mjd=time_mjd)
    return read_fits(p, beam=beam, time_mjd=time_mjd)
