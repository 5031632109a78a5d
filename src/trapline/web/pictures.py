"""PNG pictures of stored images: a thumbnail with sources overlaid, and cutouts.

Pictures are drawn with Pillow (optional) from a bounded product of the stored image:
a FITS file is memory-mapped, a thumbnail reads every ``step``-th pixel only (at most
MAX_SIDE a side) and a cutout its window only, so an 8000x8000 image costs a few MB
per request, not its whole size; the reduced products are kept in an LRU bounded in
bytes, and at most RENDERS pictures are drawn at once (others wait briefly, then
:class:`Busy`, HTTP 503). When the file is gone or Pillow is missing, the functions
return None and pages show no picture.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trapline.io import read_image
from trapline.io.fits import _beam_from_header, _celestial_wcs

log = logging.getLogger(__name__)

KIND_COLOURS = {"blind": (0, 200, 255), "forced": (255, 170, 0), "monitor": (255, 60, 200)}


def pillow_available() -> bool:
    """Whether Pillow can be imported (pictures are drawn with it)."""
    try:
        import PIL.Image  # noqa: F401
    except ImportError:
        return False
    return True


MAX_SIDE = 1024  # the down-sampled product is at most this many pixels a side
CACHE_BYTES = 64 * 2**20  # down-sampled products kept (LRU), in bytes of pixels
RENDERS = 2  # pictures drawn at once; more wait up to RENDER_WAIT_S, then 503
RENDER_WAIT_S = 5.0
HALF_WIDTH = 24  # cutout half width (image pixels)


class Busy(Exception):
    """Too many pictures are being drawn: try again shortly (HTTP 503)."""


_renders = threading.BoundedSemaphore(RENDERS)


@contextmanager
def render_slot() -> Iterator[None]:
    """One of the RENDERS drawing slots, or Busy after RENDER_WAIT_S."""
    if not _renders.acquire(timeout=RENDER_WAIT_S):
        raise Busy(f"{RENDERS} pictures are being drawn; try again shortly")
    try:
        yield
    finally:
        _renders.release()


@dataclass
class Picture:
    """An image reduced for drawing: the pixels taken every ``step`` pixels (at most
    MAX_SIDE a side), the full-resolution WCS and shape, and a way to read a window
    of full-resolution pixels (memory-mapped, so a cutout reads only its window)."""

    small: np.ndarray  # float32, (ny // step, nx // step) about
    step: int
    shape: tuple[int, int]  # full (ny, nx)
    wcs: object
    window: Callable[[int, int, int, int], np.ndarray]  # (y0, y1, x0, x1) -> pixels
    beam_pixels: float

    def sky_to_pixel(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """RA/Dec (deg) to 0-based full-resolution pixel x, y."""
        x, y = self.wcs.all_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
        return np.asarray(x), np.asarray(y)


class _Cache:
    """An LRU of Pictures bounded by the bytes of their pixels."""

    def __init__(self, limit: int):
        self.limit, self.items, self.lock = limit, OrderedDict(), threading.Lock()

    def get(self, key):
        with self.lock:
            if key in self.items:
                self.items.move_to_end(key)
                return self.items[key]
        return None

    def put(self, key, picture: Picture) -> None:
        with self.lock:
            self.items[key] = picture
            while sum(p.small.nbytes for p in self.items.values()) > self.limit and \
                    len(self.items) > 1:
                self.items.popitem(last=False)


_cache = _Cache(CACHE_BYTES)


def _fits_picture(path: str) -> Picture:
    """A Picture of a FITS file read through a memory map: only the strided pixels
    (and later a cutout's window) are read and converted to float."""
    from astropy.io import fits

    with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
        hdu = next((h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2), None)
        if hdu is None:
            raise ValueError("no image HDU")
        header = hdu.header.copy()
    scale, zero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
    wcs = _celestial_wcs(header, path)
    shape = (int(header["NAXIS2"]), int(header["NAXIS1"]))
    step = max(1, -(-max(shape) // MAX_SIDE))

    def window(y0: int, y1: int, x0: int, x1: int, ystep: int = 1, xstep: int = 1):
        with fits.open(path, memmap=True, do_not_scale_image_data=True) as hdul:
            data = next(h for h in hdul if h.is_image and h.header.get("NAXIS", 0) >= 2).data
            plane = data.reshape((-1, *data.shape[-2:]))[0]
            part = np.array(plane[y0:y1:ystep, x0:x1:xstep], dtype=np.float32)
        if scale != 1.0 or zero != 0.0:
            part = part * np.float32(scale) + np.float32(zero)
        return part

    small = window(0, shape[0], 0, shape[1], step, step)
    beam = _beam_from_header(header)
    beam_px = 3.0
    if beam is not None:
        try:
            beam_px = float(1.2 * beam.bmaj_deg / abs(wcs.proj_plane_pixel_scales()[1].value))
        except Exception:
            beam_px = 3.0
    return Picture(small, step, shape, wcs, window, beam_px)


def _image_picture(path: str) -> Picture:
    """A Picture of any other image (CASA): read whole, then reduced."""
    img = read_image(path)
    shape = img.data.shape
    step = max(1, -(-max(shape) // MAX_SIDE))
    data = img.data

    def window(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return np.asarray(data[y0:y1, x0:x1], dtype=np.float32)

    return Picture(np.asarray(data[::step, ::step], dtype=np.float32), step, shape, img.wcs,
                   window, _beam_pixels(img))


def load_picture(path: str | None) -> Picture | None:
    """The cached Picture of the image at ``path``, None when unreadable."""
    if not path:
        return None
    try:
        key = (path, os.stat(path).st_mtime_ns)
        picture = _cache.get(key)
        if picture is None:
            if Path(path).is_dir():
                picture = _image_picture(path)
            else:
                picture = _fits_picture(path)
            _cache.put(key, picture)
        return picture
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
    """PNG of the whole image (down-sampled) with its measurements (dicts with ra, dec,
    kind) circled; raises Busy when too many pictures are being drawn."""
    if not pillow_available():
        return None
    with render_slot():
        pic = load_picture(path)
        if pic is None:
            return None
        marks = [(x / pic.step, y / pic.step, kind) for x, y, kind in _marks(pic, positions)]
        return _png(_scale(pic.small), marks, size, pic.beam_pixels / pic.step)


def cutout(path: str | None, ra: float, dec: float, half_width: int = HALF_WIDTH,
           size: int = 160) -> bytes | None:
    """PNG of a square around (ra, dec) (deg) at full resolution with the position
    circled; None when the position is off the image or the file is unreadable."""
    if not pillow_available():
        return None
    with render_slot():
        pic = load_picture(path)
        if pic is None:
            return None
        x, y = (float(v) for v in np.ravel(pic.sky_to_pixel(np.array([ra]), np.array([dec]))))
        ny, nx = pic.shape
        if not (np.isfinite(x) and np.isfinite(y)) or not (0 <= x < nx and 0 <= y < ny):
            return None
        x0, y0 = max(0, int(round(x)) - half_width), max(0, int(round(y)) - half_width)
        x1 = min(nx, int(round(x)) + half_width + 1)
        y1 = min(ny, int(round(y)) + half_width + 1)
        data = pic.window(y0, y1, x0, x1)
        return _png(_scale(data), [(x - x0, y - y0, "target")], size, pic.beam_pixels)


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


def stamp(pixels: bytes, size: int, png_size: int = 160) -> bytes | None:
    """PNG of a stamp kept with a candidate (float32, ``size`` x ``size``), its centre
    circled; None without Pillow."""
    if not pillow_available():
        return None
    data = np.frombuffer(pixels, dtype=np.float32).reshape(size, size)
    centre = (size - 1) / 2.0
    return _png(_scale(data), [(centre, centre, "target")], png_size, max(2.0, size / 10))
