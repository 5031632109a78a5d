"""The two image wire formats AARTFAAC imagers send over TCP, parsed incrementally.

**GIJS format** (the AARTFAAC imager's ``output_hdr_t``): a 512-byte prefix ::

    uint64 magic  = 0x47494A53484F4D4F   little-endian on the wire: b"OMOHSJIG"
    uint32 header_length                   bytes of FITS header text that follow
    uint32 pixel_length                    bytes of pixel data that follow
    496 zero bytes

then ``header_length`` bytes of FITS header cards (as sent by astropy's
``Header.tostring()``, i.e. padded with spaces to a multiple of 2880 bytes; an
unpadded header ending in an END card is accepted too), then ``pixel_length``
bytes of little-endian float32 pixels in FITS order: NAXIS1 (x, RA-like) varies
fastest, so the array is ``(NAXIS2, NAXIS1)`` in C order.

**FITS format**: a plain concatenation of complete FITS files (header blocks, then
big-endian data padded to 2880 bytes). The primary HDU of each file is an image;
extension HDUs that follow it are skipped.

The format is detected from the first bytes of a connection and must not change on
it. Anything malformed raises :class:`ProtocolError` with a short ``reason``; the
caller closes the connection.
"""

from __future__ import annotations

import io
import math
import struct
from dataclasses import dataclass

import numpy as np
from astropy.io import fits

from trapline.image import Beam, Image
from trapline.io.fits import image_from_header, write_fits

MAGIC = 0x47494A53484F4D4F
"""The GIJS magic number; ASCII "GIJSHOMO" when read big-endian."""
MAGIC_BYTES = struct.pack("<Q", MAGIC)  # b"OMOHSJIG": what a little-endian sender writes
MAGIC_BYTES_SWAPPED = struct.pack(">Q", MAGIC)  # b"GIJSHOMO": a big-endian sender
PREFIX_SIZE = 512
BLOCK = 2880
CARD = 80

GIJS = "gijs"
FITS = "fits"
FORMATS = (GIJS, FITS)

_PREFIX = struct.Struct("<QII")
_FITS_START = b"SIMPLE  ="
_XTENSION = b"XTENSION="
_END_CARD = b"END" + b" " * 77
_FITS_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


class ProtocolError(Exception):
    """A message on a connection is malformed; ``reason`` is a short code for metrics:
    ``unknown_format``, ``byte_order``, ``bad_magic``, ``bad_length``, ``oversized``,
    ``bad_header``, ``size_mismatch``, ``truncated``."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Limits:
    """Largest header and pixel payload accepted (bytes); larger announces are errors."""

    max_header_bytes: int = 1 << 20
    max_pixel_bytes: int = 1 << 30


@dataclass
class Frame:
    """One decoded message: the FITS header and the pixels in FITS axis order (numpy
    shape ``(..., NAXIS2, NAXIS1)``), with the wire format it came in and its size."""

    header: fits.Header
    pixels: np.ndarray
    format: str
    nbytes: int


class FrameReader:
    """Incremental parser of one connection's byte stream.

    ``feed(data)`` returns the frames completed by ``data``; ``close()`` at end of stream
    raises ``ProtocolError('truncated')`` if a message was cut off.
    """

    def __init__(self, limits: Limits | None = None, format: str | None = None):
        self.limits = limits or Limits()
        self.format: str | None = format
        self._buf = bytearray()
        self._need = 0  # bytes the current message needs before parsing can go on
        self._scanned = 0  # FITS header blocks already searched for END
        self._hlen: int | None = None  # FITS header length once its END card was seen

    @property
    def buffered(self) -> int:
        """Bytes received but not yet part of a complete frame."""
        return len(self._buf)

    @property
    def pending(self) -> int:
        """Bytes the message being received is known to need in all (its announced size
        once its prefix or header is in); 0 between messages."""
        return max(self._need, len(self._buf)) if self._buf else 0

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while self._buf and len(self._buf) >= self._need:
            frame, done = self._next()
            if not done:
                break
            if frame is not None:
                frames.append(frame)
        return frames

    def close(self) -> None:
        if self._buf:
            raise ProtocolError(
                "truncated",
                f"connection closed in the middle of a message ({len(self._buf)} bytes "
                f"of an incomplete {self.format or 'unrecognised'} message)",
            )

    # -- parsing -----------------------------------------------------------------------

    def _next(self) -> tuple[Frame | None, bool]:
        """Parse one message from the buffer: (frame or None, whether one was consumed)."""
        if self.format is None:
            self.format = detect_format(bytes(self._buf[: len(_FITS_START)]))
            if self.format is None:
                self._need = len(_FITS_START)
                return None, False
        if self.format == GIJS:
            return self._next_gijs()
        return self._next_fits()

    def _next_gijs(self) -> tuple[Frame | None, bool]:
        buf = self._buf
        if len(buf) < PREFIX_SIZE:
            self._need = PREFIX_SIZE
            return None, False
        magic, hlen, plen = _PREFIX.unpack_from(buf)
        if magic != MAGIC:
            raise ProtocolError(
                "bad_magic", f"message does not start with the magic number: {bytes(buf[:8])!r}"
            )
        if hlen > self.limits.max_header_bytes or plen > self.limits.max_pixel_bytes:
            raise ProtocolError(
                "oversized",
                f"announced header of {hlen} bytes and pixels of {plen} bytes exceed the limits "
                f"({self.limits.max_header_bytes}, {self.limits.max_pixel_bytes})",
            )
        if hlen < CARD or plen % 4:
            raise ProtocolError(
                "bad_length", f"header length {hlen} / pixel length {plen} is not valid"
            )
        total = PREFIX_SIZE + hlen + plen
        if len(buf) < total:
            self._need = total
            return None, False
        header = _parse_header(bytes(buf[PREFIX_SIZE : PREFIX_SIZE + hlen]))
        shape = _shape(header)
        if math.prod(shape) * 4 != plen:
            raise ProtocolError(
                "size_mismatch",
                f"header says {' x '.join(map(str, shape[::-1]))} pixels "
                f"({math.prod(shape) * 4} bytes of float32) but {plen} bytes were announced",
            )
        start = PREFIX_SIZE + hlen
        pixels = np.frombuffer(bytes(buf[start:total]), dtype="<f4").reshape(shape)
        self._consume(total)
        return Frame(header, pixels, GIJS, total), True

    def _next_fits(self) -> tuple[Frame | None, bool]:
        buf = self._buf
        head = bytes(buf[: len(_FITS_START)])
        if len(head) < len(_FITS_START):
            self._need = len(_FITS_START)
            return None, False
        primary = head == _FITS_START
        if not primary and head != _XTENSION:
            raise ProtocolError(
                "bad_magic", f"FITS stream lost sync: next HDU starts with {head!r}"
            )
        hlen = self._find_end()
        if hlen is None:
            if len(buf) > self.limits.max_header_bytes:
                raise ProtocolError(
                    "oversized", f"no END card in the first {self.limits.max_header_bytes} bytes"
                )
            self._need = (self._scanned + 1) * BLOCK
            return None, False
        header = _parse_header(bytes(buf[:hlen]))
        nbytes = _fits_data_bytes(header)
        if nbytes > self.limits.max_pixel_bytes:
            raise ProtocolError(
                "oversized",
                f"HDU data of {nbytes} bytes exceeds the limit ({self.limits.max_pixel_bytes})",
            )
        total = hlen + _padded(nbytes)
        if len(buf) < total:
            self._need = total
            return None, False
        frame = None
        if primary:
            frame = Frame(
                header, _fits_pixels(header, bytes(buf[hlen : hlen + nbytes])), FITS, total
            )
        self._consume(total)
        return frame, True

    def _find_end(self) -> int | None:
        """Byte length of the header (whole blocks) if its END card has arrived."""
        if self._hlen is not None:
            return self._hlen
        buf = self._buf
        while (self._scanned + 1) * BLOCK <= len(buf):
            block = self._scanned * BLOCK
            self._scanned += 1
            for off in range(block, block + BLOCK, CARD):
                if buf[off : off + 3] == b"END" and buf[off : off + CARD].rstrip() == b"END":
                    self._hlen = self._scanned * BLOCK
                    return self._hlen
        return None

    def _consume(self, n: int) -> None:
        del self._buf[:n]
        self._need = 0
        self._scanned = 0
        self._hlen = None


def detect_format(first: bytes) -> str | None:
    """The wire format from a connection's first bytes; None if more bytes are needed.

    Raises:
        ProtocolError: ``byte_order`` for a big-endian GIJS magic, ``unknown_format``
            for anything else that is neither format.
    """
    if first[:8] == MAGIC_BYTES:
        return GIJS
    if first[:8] == MAGIC_BYTES_SWAPPED:
        raise ProtocolError(
            "byte_order",
            "GIJS magic in big-endian byte order (b'GIJSHOMO'); expected "
            "little-endian (b'OMOHSJIG')",
        )
    if first[: len(_FITS_START)] == _FITS_START:
        return FITS
    n = min(len(first), 8)
    if not (
        MAGIC_BYTES.startswith(first[:n])
        or MAGIC_BYTES_SWAPPED.startswith(first[:n])
        or _FITS_START.startswith(first)
    ):
        raise ProtocolError(
            "unknown_format",
            f"stream starts with {first!r}: neither the GIJS magic nor a FITS file",
        )
    return None


def _parse_header(raw: bytes) -> fits.Header:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ProtocolError("bad_header", f"FITS header is not ASCII ({exc})") from exc
    if _END_CARD.decode() not in text and not text.rstrip().endswith("END"):
        raise ProtocolError("bad_header", "FITS header has no END card")
    try:
        return fits.Header.fromstring(text)
    except Exception as exc:  # astropy raises several types for bad cards
        raise ProtocolError("bad_header", f"unparsable FITS header ({exc})") from exc


def _shape(header: fits.Header) -> tuple[int, ...]:
    """Numpy shape of the data (FITS axis order reversed)."""
    try:
        naxis = int(header["NAXIS"])
        dims = [int(header[f"NAXIS{i}"]) for i in range(1, naxis + 1)]
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError("bad_header", f"no valid NAXIS keywords ({exc})") from exc
    if naxis < 1 or any(d < 0 for d in dims):
        raise ProtocolError("bad_header", f"FITS header has NAXIS={naxis} axes {dims}")
    return tuple(dims[::-1])


def _fits_data_bytes(header: fits.Header) -> int:
    try:
        bitpix = int(header["BITPIX"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ProtocolError("bad_header", "FITS header has no valid BITPIX") from exc
    if bitpix not in _FITS_DTYPES:
        raise ProtocolError("bad_header", f"FITS BITPIX {bitpix} is not valid")
    shape = _shape(header) if int(header.get("NAXIS", 0)) else ()
    if not shape:
        return 0
    count = math.prod(shape)
    pcount, gcount = int(header.get("PCOUNT", 0)), int(header.get("GCOUNT", 1))
    return abs(bitpix) // 8 * gcount * (pcount + count)


def _fits_pixels(header: fits.Header, data: bytes) -> np.ndarray:
    bitpix = int(header["BITPIX"])
    shape = _shape(header) if int(header.get("NAXIS", 0)) else (0,)
    arr = np.frombuffer(data, dtype=_FITS_DTYPES[bitpix]).reshape(shape)
    bscale = float(header.get("BSCALE", 1.0))
    bzero = float(header.get("BZERO", 0.0))
    if bitpix > 0:
        out = arr.astype(np.float64)
        if "BLANK" in header:
            out[arr == int(header["BLANK"])] = np.nan
        return (out * bscale + bzero).astype(np.float32)
    if bscale != 1.0 or bzero != 0.0:
        return (arr * bscale + bzero).astype(np.float32)
    return arr.astype(np.float32)


def _padded(n: int) -> int:
    return -(-n // BLOCK) * BLOCK


# -- encoding ----------------------------------------------------------------------------


def encode_fits(image: Image) -> bytes:
    """A complete FITS file (bytes) of the image, as ``trapline.io.fits.write_fits`` writes."""
    buf = io.BytesIO()
    write_fits(image, buf)  # type: ignore[arg-type]  # astropy writes to file objects too
    return buf.getvalue()


def encode_gijs(image: Image) -> bytes:
    """A GIJS message of the image: 512-byte prefix, padded FITS header, float32 LE pixels."""
    whole = encode_fits(image)
    reader = FrameReader(format=FITS)
    reader._buf += whole
    hlen = reader._find_end()
    assert hlen is not None
    header = whole[:hlen]
    pixels = np.ascontiguousarray(image.data, dtype="<f4").tobytes()
    prefix = _PREFIX.pack(MAGIC, len(header), len(pixels)).ljust(PREFIX_SIZE, b"\0")
    return prefix + header + pixels


def encode(image: Image, format: str) -> bytes:
    """The image in the given wire format (``gijs`` or ``fits``)."""
    if format == GIJS:
        return encode_gijs(image)
    if format == FITS:
        return encode_fits(image)
    raise ValueError(f"unknown wire format {format!r}; choose from {FORMATS}")


def frame_to_image(frame: Frame, beam: Beam | None = None, path: str = "") -> Image:
    """Build the Image of a frame (raises ``trapline.errors.ImageError`` if unusable)."""
    return image_from_header(frame.pixels, frame.header, path=path, beam=beam)
