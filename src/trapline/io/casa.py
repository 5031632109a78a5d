"""CASA image directories, read with python-casacore (optional extra ``trapline[casa]``).

casacore writes the image as FITS (its own, well-tested conversion of coordinates, beam
and frequency), which is then read like any FITS image, so a CASA image and its FITS
twin give the same values.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from trapline.errors import ImageError, install_hint
from trapline.image import Beam, Image
from trapline.io.fits import read_fits


def read_casa(path: str | Path, beam: Beam | None = None,
              time_mjd: float | None = None) -> Image:
    """Read a CASA image directory (``beam``, ``time_mjd`` as for ``read_fits``).

    Raises:
        ImageError: ``unreadable`` when python-casacore is missing or the table is bad.
    """
    try:
        from casacore.images import image as casa_image
    except ImportError as exc:
        raise ImageError(
            "unreadable",
            f"{path}: {install_hint('reading CASA images', 'casa', exc)}",
        ) from exc

    try:
        img = casa_image(str(path))
        with tempfile.TemporaryDirectory() as tmp:
            fits_path = Path(tmp) / "image.fits"
            img.tofits(str(fits_path), velocity=False)
            loaded = read_fits(fits_path, beam=beam, time_mjd=time_mjd)
    except ImageError as exc:
        raise ImageError(exc.reason, str(exc).replace(str(fits_path), str(path))) from exc
    except Exception as exc:  # casacore raises RuntimeError for broken tables
        raise ImageError("unreadable", f"{path}: not a readable CASA image ({exc})") from exc
    loaded.path = str(path)
    return loaded
