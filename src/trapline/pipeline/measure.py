"""The measuring stage: read an image, check it, extract its sources.

It needs nothing but the image, so it runs in worker processes (or on Dask workers)
ahead of the ordered association stage. What it returns is trimmed to what later
stages need: the catalogue, the background-subtracted image and the rms map.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np

from trapline.errors import ImageError
from trapline.extract import Extraction, ExtractionConfig, extract
from trapline.geometry import field_circle
from trapline.image import Beam, Image
from trapline.io import read_image
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.inputs import image_key, unreadable_key
from trapline.pipeline.quality import image_checks
from trapline.records import ImageRecord

log = logging.getLogger(__name__)


@dataclass
class Measured:
    """One image after the measuring stage. ``extraction`` is None when rejected.
    ``detection_index``: when ``extraction`` holds part of the image's catalogue (a sky
    partition's), each detection's index in the whole one."""

    record: ImageRecord
    extraction: Extraction | None
    detection_index: np.ndarray | None = None


def extraction_config(config: PipelineConfig) -> ExtractionConfig:
    e = config.extraction
    return ExtractionConfig(detection_sigma=e.detection_sigma, analysis_sigma=e.analysis_sigma,
                            grid=e.grid, method=e.method, force_beam=e.force_beam,
                            deblend=e.deblend,
                            margin=config.image.margin_pixels)


def measure(source: str | Image, config: PipelineConfig) -> Measured:
    """Read (if a path), quality-check and extract one image. Never raises for bad
    input: the record says what was wrong."""
    path = source if isinstance(source, str) else source.path
    try:
        if isinstance(source, str):
            beam = Beam(*config.image.beam_deg) if config.image.beam_deg else None
            image = read_image(source, beam=beam, time_mjd=config.image.time_mjd or None)
        else:
            image = source
    except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded rejection
        reason, message = describe_error(exc)
        log.warning("rejected %s", _with_path(path, message))
        return Measured(_unreadable_record(path, reason, message), None)
    try:
        result = extract(image, extraction_config(config))
    except Exception as exc:  # noqa: BLE001
        reason, message = describe_error(exc)
        log.warning("rejected %s", _with_path(path, message))
        return Measured(_record(image, None, False, f"{reason}: {message}"), None)
    # The image's rms statistics from the background cells' clipped rms: the same
    # numbers the map is interpolated from, at a thousandth of the cost of the map.
    cells = result.maps.grid_rms
    finite = cells[np.isfinite(cells)]
    record = _record(image, finite, True, None, len(result.sources))
    reason = image_checks(image, record.rms_median, config.quality)
    if reason:
        return Measured(replace(record, accepted=False, reject_reason=reason, n_blind=0), None)
    # Trim what the ordered stage does not need before it crosses a process boundary:
    # the raw pixels give way to the residual (same shape and WCS, pickled once), and
    # the rms map to its cell values, interpolated where the ordered stage looks.
    result.image = replace(image, data=result.residual)
    result.maps.background = None  # type: ignore[assignment]
    result.maps.rms = result.maps.rms_on_demand(result.residual)
    return Measured(record, result)


def _with_path(path: str | None, message: str) -> str:
    """The message, led by the path unless it names it already."""
    return message if path and path in message else f"{path or 'image'}: {message}"


def _unreadable_record(path: str, reason: str, message: str) -> ImageRecord:
    nan = float("nan")
    return ImageRecord(
        image_key=unreadable_key(path), path=path, time_mjd=nan, freq_hz=nan,
        bandwidth_hz=nan, band=-1, telescope="", integration_s=nan, shape=(0, 0),
        centre_ra=nan, centre_dec=nan, radius_deg=nan, bmaj_deg=nan, bmin_deg=nan,
        bpa_deg=nan, rms_median=nan, rms_min=nan, rms_max=nan, accepted=False,
        reject_reason=f"{reason}: {message}",
    )


def _record(image: Image, rms: np.ndarray | None, accepted: bool, reason: str | None,
            n_blind: int = 0) -> ImageRecord:
    fp = field_circle(image)
    have = rms is not None and len(rms) > 0
    return ImageRecord(
        image_key=image_key(image.path, image.time_mjd, image.freq_hz),
        path=image.path, time_mjd=image.time_mjd, freq_hz=image.freq_hz,
        bandwidth_hz=image.bandwidth_hz, band=-1, telescope=image.telescope,
        integration_s=image.integration_s, shape=image.shape,
        centre_ra=fp.ra, centre_dec=fp.dec, radius_deg=fp.radius_deg,
        bmaj_deg=image.beam.bmaj_deg, bmin_deg=image.beam.bmin_deg, bpa_deg=image.beam.bpa_deg,
        rms_median=float(np.median(rms)) if have else float("nan"),
        rms_min=float(rms.min()) if have else float("nan"),
        rms_max=float(rms.max()) if have else float("nan"),
        accepted=accepted, reject_reason=reason, n_blind=n_blind,
    )


def describe_error(exc: Exception) -> tuple[str, str]:
    """(reason code, message) of a failure to read or measure an image."""
    if isinstance(exc, ImageError):
        return exc.reason, str(exc)
    return "error", f"{type(exc).__name__}: {exc}"
