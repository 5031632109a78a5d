"""Spherical geometry: now :mod:`trapline.geometry` (the storage uses it too); the
names stay importable from here."""

from trapline.geometry import (
    healpix_cells,
    offsets_deg,
    separation_deg,
    shift_position,
    unit_vectors,
)

__all__ = ["healpix_cells", "offsets_deg", "separation_deg", "shift_position", "unit_vectors"]
