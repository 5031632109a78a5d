"""Image readers: FITS (always) and CASA images (with python-casacore)."""

from trapline.io.fits import read_fits, read_image, write_fits

__all__ = ["read_fits", "read_image", "write_fits"]
