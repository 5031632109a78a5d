"""Trapline: real-time transient detection for radio image streams."""

from trapline.errors import ImageError, TraplineError
from trapline.image import Beam, Image

__version__ = "0.1.0"

__all__ = ["Beam", "Image", "ImageError", "TraplineError", "__version__"]
