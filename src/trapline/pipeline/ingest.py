"""Names kept for the modules still importing them from here: finding images is now
:mod:`trapline.pipeline.inputs`, band assignment :mod:`trapline.pipeline.bands`."""

from trapline.pipeline.bands import BandAssigner
from trapline.pipeline.inputs import find_images, header_time_freq

__all__ = ["BandAssigner", "find_images", "header_time_freq"]
