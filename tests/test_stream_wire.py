"""The two AARTFAAC wire formats: encoding, incremental parsing, errors and pixel order."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from astropy.wcs import WCS

from trapline.image import Beam, Image
from trapline.stream.wire import (
    FITS,
    FORMATS,
    GIJS,
    MAGIC,
    FrameReader,
    Limits,
    ProtocolError,
    encode,
    encode_fits,
    encode_gijs,
    frame_to_image,
)


def asymmetric_image(
    nx: int = 200, ny: int = 120, time_mjd: float = 61000.0, freq_hz: float = 60e6
) -> Image:
    """A non-square image whose every pixel value encodes its own (x, y)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [150.0, 30.0]
    wcs.wcs.crpix = [nx / 2 + 1, ny / 2 + 1]
    wcs.wcs.cdelt = [-0.01, 0.01]
    y, x = np.mgrid[0:ny, 0:nx]
    data = (x + 1000.0 * y).astype(np.float32)
    return Image(data, wcs, Beam(0.04, 0.03, 10.0), time_mjd, freq_hz, integration_s=1.0)


def test_magic_is_gijshomo_read_big_endian_and_little_endian_on_the_wire():
    assert struct.pack(">Q", MAGIC) == b"GIJSHOMO"
    message = encode_gijs(asymmetric_image())
    assert message[:8] == b"OMOHSJIG"
    magic, hlen, plen = struct.unpack_from("<QII", message)
    assert magic == MAGIC
    assert hlen % 2880 == 0  # the header length counts the padded header
    assert plen == 200 * 120 * 4
    assert message[16:512] == bytes(496)
    assert len(message) == 512 + hlen + plen


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("chunk", [1, 97, 4096, None])
def test_round_trip_keeps_pixel_order_of_non_square_images(fmt, chunk):
    image = asymmetric_image()
    data = encode(image, fmt) * 3
    reader = FrameReader()
    frames = []
    step = chunk or len(data)
    for i in range(0, len(data), step):
        frames += reader.feed(data[i : i + step])
    reader.close()
    assert reader.format == fmt
    assert len(frames) == 3
    out = frame_to_image(frames[2])
    assert out.shape == (120, 200)
    np.testing.assert_array_equal(out.data, image.data)
    assert out.data[7, 150] == 150 + 7000  # data[y, x]
    assert out.time_mjd == pytest.approx(image.time_mjd, abs=1e-9)
    assert out.freq_hz == image.freq_hz
    assert out.beam == image.beam
    ra, dec = out.pixel_to_sky(150, 7)
    ra0, dec0 = image.pixel_to_sky(150, 7)
    assert (ra, dec) == pytest.approx((ra0, dec0))


def test_fits_stream_decodes_scaled_integer_data_and_skips_extensions():
    import io

    from astropy.io import fits

    image = asymmetric_image(nx=30, ny=20)
    header = fits.open(io.BytesIO(encode_fits(image)))[0].header
    hdu = fits.PrimaryHDU(image.data.astype(np.float64), header=header)
    hdu.scale("int16", bscale=0.5, bzero=10.0)
    buf = io.BytesIO()
    fits.HDUList([hdu, fits.ImageHDU(np.zeros((3, 3)))]).writeto(buf)
    raw = buf.getvalue()
    reader = FrameReader()
    frames = reader.feed(raw + raw)
    reader.close()
    assert len(frames) == 2
    assert frames[0].header["BITPIX"] == 16 and frames[0].header["BSCALE"] == 0.5
    expected = np.asarray(fits.open(io.BytesIO(raw))[0].data, dtype=np.float32)
    np.testing.assert_allclose(frames[0].pixels, expected)


@pytest.mark.parametrize(
    "payload, reason",
    [
        (b"hello world, this is not an image" * 20, "unknown_format"),
        (b"GIJSHOMO" + bytes(504), "byte_order"),
        (struct.pack("<QII", MAGIC, 2880, 1 << 31).ljust(512, b"\0"), "oversized"),
        (struct.pack("<QII", MAGIC, 1 << 30, 16).ljust(512, b"\0"), "oversized"),
        (struct.pack("<QII", MAGIC, 2880, 7).ljust(512, b"\0"), "bad_length"),
    ],
)
def test_malformed_prefixes_raise_with_reason(payload, reason):
    with pytest.raises(ProtocolError) as err:
        FrameReader(Limits(max_header_bytes=1 << 20, max_pixel_bytes=1 << 28)).feed(payload)
    assert err.value.reason == reason


def test_gijs_size_mismatch_and_lost_sync_are_errors():
    good = encode_gijs(asymmetric_image(nx=40, ny=20))
    hlen = struct.unpack_from("<I", good, 8)[0]
    bad = good[:12] + struct.pack("<I", 40 * 20 * 4 - 4) + good[16 : 512 + hlen] + bytes(3196)
    with pytest.raises(ProtocolError, match="pixels") as err:
        FrameReader().feed(bad)
    assert err.value.reason == "size_mismatch"
    reader = FrameReader()
    assert len(reader.feed(good)) == 1
    with pytest.raises(ProtocolError) as err:
        reader.feed(b"X" * 512)
    assert err.value.reason == "bad_magic"


@pytest.mark.parametrize("fmt", [GIJS, FITS])
def test_truncated_message_is_reported_at_close(fmt):
    data = encode(asymmetric_image(nx=40, ny=20), fmt)
    reader = FrameReader()
    assert reader.feed(data[:-100]) == []
    with pytest.raises(ProtocolError) as err:
        reader.close()
    assert err.value.reason == "truncated"


def test_fits_header_without_end_is_oversized():
    reader = FrameReader(Limits(max_header_bytes=2880 * 4))
    card = b"SIMPLE  =                    T".ljust(80)
    with pytest.raises(ProtocolError) as err:
        reader.feed(card + b"COMMENT".ljust(80) * 200)
    assert err.value.reason == "oversized"
