"""Stamps: small cutouts kept with a new source's candidate, from the image it was found
in and the newest buffered earlier images of its band, so that its pictures exist after
the images are gone (streamed images are not kept)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trapline.extract import Extraction
from trapline.pipeline.precovery import Buffered
from trapline.records import ImageRecord, Stamps, concat


def cut(extraction: Extraction, ra: float, dec: float, size: int) -> np.ndarray | None:
    """A ``size`` x ``size`` float32 square of the background-subtracted image centred on
    the pixel of (ra, dec) (deg), NaN beyond the edges; None when off the image."""
    x, y = extraction.image.sky_to_pixel(np.array([ra]), np.array([dec]))
    x, y = float(np.ravel(x)[0]), float(np.ravel(y)[0])
    data = extraction.residual
    ny, nx = data.shape
    if not (np.isfinite(x) and np.isfinite(y)) or not (0 <= x < nx and 0 <= y < ny):
        return None
    half = size // 2
    cx, cy = int(round(x)), int(round(y))
    out = np.full((size, size), np.nan, dtype=np.float32)
    x0, y0 = max(0, cx - half), max(0, cy - half)
    x1, y1 = min(nx, cx - half + size), min(ny, cy - half + size)
    out[y0 - (cy - half):y1 - (cy - half), x0 - (cx - half):x1 - (cx - half)] = data[y0:y1,
                                                                                     x0:x1]
    return out


def stamps_for(source_ids: np.ndarray, ra: np.ndarray, dec: np.ndarray, record: ImageRecord,
               band: int, extraction: Extraction, earlier: Sequence[Buffered], size: int
               ) -> Stamps:
    """Stamps of new sources: on their own image ('detection') and on ``earlier``
    buffered images of the band ('before')."""
    parts = []
    images = [(record, extraction, "detection")] + [(b.record, b.extraction, "before")
                                                    for b in earlier]
    for rec, ex, label in images:
        for sid, r, d in zip(source_ids, ra, dec, strict=True):
            pixels = cut(ex, float(r), float(d), size)
            if pixels is None:
                continue
            parts.append(Stamps(
                source_id=np.array([sid], dtype=np.int64),
                image_key=np.array([rec.image_key], dtype=object),
                time_mjd=np.array([rec.time_mjd]), band=np.array([band], dtype=np.int64),
                label=np.array([label], dtype=object), size=np.array([size], dtype=np.int64),
                pixels=np.array([pixels.tobytes()], dtype=object)))
    return concat(Stamps, parts)
