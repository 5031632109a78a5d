"""Trapline: real-time transient detection for radio image streams."""

from trapline.errors import ImageError, TraplineError
from trapline.image import Beam, Image
from trapline.version import __version__

__all__ = ["Beam", "Image", "ImageError", "TraplineError", "__version__", "open"]


def open(url: str):  # noqa: A001 - trapline.open(URL) is the notebook entry point
    """Open a stored run (SQLAlchemy URL or SQLite file): tables as pandas DataFrames.

    >>> run = trapline.open("sqlite:///trapline.sqlite")
    >>> run.candidates(); run.lightcurve(42)
    """
    from trapline.api import open as open_run

    return open_run(url)
