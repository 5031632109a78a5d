"""PNG pictures of stored images: a thumbnail with sources overlaid, and cutouts.

Images are read with :func:`trapline.io.read_image` from the path stored for them and
drawn with Pillow (optional): when the file is gone or Pillow is missing, the
functions return None and pages show no picture.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from functools import lru_cache

import numpy as np

log = logging.getLogger(__name__)

KIND_COLOURS = {"blind": (0, 200, 255), "forced": (255, 170, 0), "monitor": (255, 60, 200)}


def pillow_available() -> bool:
    """Whether Pillow can be imported (pictures are drawn with it)."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


@lru_cache(maxsize=16)
def _load(path: str):
    """The image at ``path`` (cached: a page asks for several cutouts of one file)."""
    from trapline.io import read_image

    return read_image(path)


def load_image(path: str | None):
    """The :class:`trapline.image.Image` at ``path``, None when unreadable."""
    if not path:
        return None
    try:
        return _load(path)
    except Exception as exc:  # any unreadable file just means "no picture"
        log.debug("cannot read image %s: %s", path, exc)
        return None


def _scale(data: np.ndarray) -> np.ndarray:
    """8-bit grey levels: a linear stretch between the 1st and 99.5th percentiles."""
    finite = data[np.isfinite(data)]
    if finite.size == 0:
        return np.zeros(data.shape, dtype=np.uint8)
    lo, hi = np.percentile(finite, [1.0, 99.5])
    hi = hi if hi > lo else lo + 1.0
    scaled = np.clip((np.nan_to_num(data, nan=lo) - lo) / (hi - lo), 0.0, 1.0)
    return (scaled * 255).astype(np.uint8)


def _png(grey: np.ndarray, marks: Sequence[tuple[float, float, str]], size: int,
         radius: float) -> bytes:
    """Encode a grey image (row 0 at the bottom, as in FITS) with circles at
    ``marks`` (x, y pixel, kind) as PNG, scaled to ``size`` pixels wide."""
    from PIL import Image as PILImage
    from PIL import ImageDraw

    ny, nx = grey.shape
    picture = PILImage.fromarray(grey[::-1]).convert("RGB")
    zoom = size / max(nx, ny)
    picture = picture.resize((max(1, round(nx * zoom)), max(1, round(ny * zoom))),
                             PILImage.Resampling.NEAREST if zoom > 1 else
                             PILImage.Resampling.BILINEAR)
    draw = ImageDraw.Draw(picture)
    r = max(3.0, radius * zoom)
    for x, y, kind in marks:
        px, py = (x + 0.5) * zoom, (ny - 0.5 - y) * zoom
        draw.ellipse([px - r, py - r, px + r, py + r], outline=KIND_COLOURS.get(kind,
                                                                               (0, 255, 0)))
    out = io.BytesIO()
    picture.save(out, format="PNG", optimize=False)
    return out.getvalue()


def thumbnail(path: str | None, positions: Sequence[dict], size: int = 512) -> bytes | None:
    """PNG of the whole image with its measurements (dicts with ra, dec, kind) circled."""
    if not pillow_available():
        return None
    img = load_image(path)
    if img is None:
        return None
    marks = _marks(img, positions)
    return _png(_scale(img.data), marks, size, _beam_pixels(img))


def cutout(path: str | None, ra: float, dec: float, half_width: int = 24,
           size: int = 160) -> bytes | None:
    """PNG of a square around (ra, dec) (deg) with the position circled; None when the
    position is off the image or the file is unreadable."""
    if not pillow_available():
        return None
    img = load_image(path)
    if img is None:
        return None
    x, y = (float(v) for v in np.ravel(img.sky_to_pixel(np.array([ra]), np.array([dec]))))
    ny, nx = img.data.shape
    if not (np.isfinite(x) and np.isfinite(y)) or not (0 <= x < nx and 0 <= y < ny):
        return None
    x0, y0 = max(0, int(round(x)) - half_width), max(0, int(round(y)) - half_width)
    x1, y1 = min(nx, int(round(x)) + half_width + 1), min(ny, int(round(y)) + half_width + 1)
    data = img.data[y0:y1, x0:x1]
    return _png(_scale(data), [(x - x0, y - y0, "target")], size, _beam_pixels(img))


def _marks(img, positions: Sequence[dict]) -> list[tuple[float, float, str]]:
    ok = [p for p in positions if p.get("ra") is not None and p.get("dec") is not None]
    if not ok:
        return []
    xs, ys = img.sky_to_pixel(np.array([p["ra"] for p in ok]), np.array([p["dec"] for p in ok]))
    return [(float(x), float(y), p.get("kind", "")) for x, y, p in zip(xs, ys, ok, strict=True)
            if np.isfinite(x) and np.isfinite(y)]


def _beam_pixels(img) -> float:
    """About one beam FWHM in pixels (circle radius), 3 when the beam is unknown."""
    try:
        beam = img.pixel_beam
        return float(1.2 * beam.sigma_maj * 2.3548)
    except Exception:
        return 3.0
