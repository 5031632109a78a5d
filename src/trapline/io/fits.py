"""Read and write FITS images as :class:`trapline.image.Image`.

Degenerate frequency and Stokes axes are dropped; the frequency is taken from the
spectral axis, or FREQ/RESTFRQ/RESTFREQ keywords. The beam comes from BMAJ/BMIN/BPA,
else from an AIPS ``CLEAN BMAJ=`` HISTORY card, else from the caller (configuration).
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.time import Time
from astropy.wcs import WCS, FITSFixedWarning

from trapline.errors import ImageError
from trapline.image import Beam, Image

_AIPS_BEAM = re.compile(
    r"BMAJ\s*=\s*([-+0-9.Ee]+)\s+BMIN\s*=\s*([-+0-9.Ee]+)\s+BPA\s*=\s*([-+0-9.Ee]+)"
)


def read_fits(path: str | Path, beam: Beam | None = None,
              time_mjd: float | None = None) -> Image:
    """Read a FITS image; gzip-compressed (``.fits.gz``) and tile-compressed
    (``.fits.fz``) files too.

    Args:
        path: the file.
        beam: beam to use when the header has none (from the configuration).
        time_mjd: observation time (MJD, mid-integration) to use when the header has
            none (from the configuration); without either the image's time is NaN.

    Raises:
        ImageError: reason ``unreadable``, ``no_data``, ``bad_shape``, ``no_wcs``, ``no_beam``.
    """
    path = Path(path)
    try:
        with fits.open(path, memmap=False) as hdul:
            hdu = image_hdu(hdul, path)
            header = hdu.header.copy()
            raw = np.asarray(hdu.data)
    except ImageError:
        raise
    except FileNotFoundError as exc:
        raise ImageError("unreadable", f"{path}: file not found") from exc
    except Exception as exc:  # astropy raises many types for truncated or non-FITS files
        raise ImageError("unreadable", f"{path}: not a readable FITS file ({exc})") from exc
    return image_from_header(raw, header, path=str(path), beam=beam, time_mjd=time_mjd)


def image_hdu(
    hdul: fits.HDUList, path: str | Path = ""
) -> fits.PrimaryHDU | fits.ImageHDU | fits.CompImageHDU:
    """The first HDU holding an image: the primary one, or for a tile-compressed file
    (``.fits.fz``) the CompImageHDU extension after an empty primary HDU.

    Raises:
        ImageError: reason ``no_data`` when no HDU holds an image.
    """
    for hdu in hdul:
        if hdu.is_image and int(hdu.header.get("NAXIS", 0)) > 0:
            return hdu
    raise ImageError("no_data", f"{path}: no image data in any HDU")


def image_from_header(
    raw: np.ndarray, header: fits.Header, path: str = "", beam: Beam | None = None,
    time_mjd: float | None = None,
) -> Image:
    """Build an Image from a pixel array (FITS axis order) and its header; ``beam`` and
    ``time_mjd`` (MJD) stand in for a header without them."""
    data = _squeeze_to_2d(raw, header, path)
    wcs = _celestial_wcs(header, path)
    image_beam = _beam_from_header(header) or beam
    if image_beam is None:
        raise ImageError(
            "no_beam",
            f"{path}: no restoring beam (BMAJ/BMIN/BPA) in the header; "
            "give one in the configuration ([image] beam_deg = [bmaj, bmin, bpa])",
        )
    data = data.astype(np.float32, copy=False)
    if np.isinf(data).any():  # blank +-inf like NaN (a copy only then)
        data = np.where(np.isinf(data), np.float32(np.nan), data).astype(np.float32)
    integration = float(header.get("EXPTIME", header.get("INTTIME", 0.0)) or 0.0)
    header_time = _time_mjd(header, integration)
    if not math.isfinite(header_time) and time_mjd is not None:
        header_time = float(time_mjd)
    return Image(
        data=data,
        wcs=wcs,
        beam=image_beam,
        time_mjd=header_time,
        freq_hz=_frequency(header),
        bandwidth_hz=_bandwidth(header),
        integration_s=integration,
        telescope=str(header.get("TELESCOP", "")).strip(),
        path=path,
    )


def _squeeze_to_2d(raw: np.ndarray, header: fits.Header, path: str) -> np.ndarray:
    if raw.ndim < 2:
        raise ImageError("bad_shape", f"{path}: image has {raw.ndim} axis, need 2")
    extra = raw.shape[:-2]
    if any(n != 1 for n in extra):
        raise ImageError(
            "bad_shape",
            f"{path}: image cube of shape {raw.shape}; only degenerate (length-1) "
            "frequency/Stokes axes are supported",
        )
    data = raw.reshape(raw.shape[-2:])
    if data.shape[0] < 2 or data.shape[1] < 2:
        raise ImageError("bad_shape", f"{path}: image of shape {data.shape} is too small")
    return data


def _celestial_wcs(header: fits.Header, path: str) -> WCS:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        try:
            wcs = WCS(header)
            if wcs.naxis != 2 or not wcs.is_celestial:  # a cube: keep RA/Dec only
                wcs = wcs.celestial
        except Exception as exc:
            raise ImageError("no_wcs", f"{path}: invalid WCS ({exc})") from exc
    if wcs.naxis != 2 or not wcs.has_celestial:
        raise ImageError("no_wcs", f"{path}: no celestial WCS (need RA/Dec CTYPE axes)")
    try:
        wcs.all_pix2world([[0.0, 0.0]], 0)
    except Exception as exc:
        raise ImageError("no_wcs", f"{path}: WCS cannot transform pixels ({exc})") from exc
    return wcs


def _beam_from_header(header: fits.Header) -> Beam | None:
    try:
        if "BMAJ" in header and "BMIN" in header:
            bmaj, bmin = float(header["BMAJ"]), float(header["BMIN"])
            bpa = float(header.get("BPA", 0.0))
            if bmaj > 0 and bmin > 0 and math.isfinite(bmaj) and math.isfinite(bmin):
                return Beam(bmaj, bmin, bpa)
        for card in reversed(header.get("HISTORY", [])):
            m = _AIPS_BEAM.search(str(card))
            if m:
                bmaj, bmin, bpa = (float(v) for v in m.groups())
                if bmaj > 0 and bmin > 0:
                    return Beam(bmaj, bmin, bpa)
    except (TypeError, ValueError):
        return None
    return None


def _spectral_axis(header: fits.Header) -> int | None:
    for i in range(1, int(header.get("NAXIS", 0)) + 1):
        ctype = str(header.get(f"CTYPE{i}", "")).upper()
        if ctype.startswith("FREQ") or ctype.startswith("VOPT") or ctype.startswith("FELO"):
            return i
    return None


def _frequency(header: fits.Header) -> float:
    axis = _spectral_axis(header)
    if axis is not None and str(header.get(f"CTYPE{axis}", "")).upper().startswith("FREQ"):
        crval = float(header.get(f"CRVAL{axis}", 0.0))
        cdelt = float(header.get(f"CDELT{axis}", 0.0))
        crpix = float(header.get(f"CRPIX{axis}", 1.0))
        return crval + (1.0 - crpix) * cdelt
    for key in ("FREQ", "RESTFRQ", "RESTFREQ", "CRVAL3"):
        if key in header:
            try:
                value = float(header[key])
            except (TypeError, ValueError):
                continue
            if value > 0:
                return value
    return 0.0


def _bandwidth(header: fits.Header) -> float:
    axis = _spectral_axis(header)
    if axis is not None:
        return abs(float(header.get(f"CDELT{axis}", 0.0)))
    return float(header.get("BANDWIDTH", header.get("BANDWID", 0.0)) or 0.0)


def _time_mjd(header: fits.Header, integration_s: float) -> float:
    """Mid-integration time (MJD). DATE-OBS is the start of the integration."""
    if "MJD-OBS" in header and "DATE-OBS" not in header:
        start = float(header["MJD-OBS"])
    elif "DATE-OBS" in header:
        value = str(header["DATE-OBS"]).strip()
        try:
            start = Time(value, scale="utc").mjd
        except ValueError:
            # Some writers use 'YYYY-MM-DD' plus a separate TIME-OBS.
            try:
                start = Time(f"{value}T{header.get('TIME-OBS', '00:00:00')}", scale="utc").mjd
            except ValueError:
                return float("nan")
    else:
        return float("nan")
    return float(start + integration_s / 2.0 / 86400.0)


def write_fits(image: Image, path: str | Path, extra: dict | None = None) -> None:
    """Write an Image as a 2-D float32 FITS file with WCS, beam, time and frequency."""
    header = image.wcs.to_header()
    header["BUNIT"] = "JY/BEAM"
    header["BMAJ"] = image.beam.bmaj_deg
    header["BMIN"] = image.beam.bmin_deg
    header["BPA"] = image.beam.bpa_deg
    start = image.time_mjd - image.integration_s / 2.0 / 86400.0
    header["DATE-OBS"] = Time(start, format="mjd", scale="utc").isot
    header["RESTFRQ"] = image.freq_hz
    header["FREQ"] = image.freq_hz
    header["BANDWID"] = image.bandwidth_hz
    header["EXPTIME"] = image.integration_s
    if image.telescope:
        header["TELESCOP"] = image.telescope
    for key, value in (extra or {}).items():
        header[key] = value
    fits.PrimaryHDU(np.asarray(image.data, dtype=np.float32), header=header).writeto(
        path, overwrite=True
    )
