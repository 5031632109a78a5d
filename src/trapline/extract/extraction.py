"""Extraction of one image: background, islands, measurement, sky catalogue."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from trapline.errors import ImageError
from trapline.extract.background import BackgroundMaps, background_maps
from trapline.extract.catalogue import Catalogue
from trapline.extract.condon import condon_errors
from trapline.extract.config import ExtractionConfig
from trapline.extract.deblend import deblend
from trapline.extract.forced import ForcedMeasurements, forced_fit_pixels
from trapline.extract.gaussfit import fit_islands, refine_moments
from trapline.extract.islands import find_islands
from trapline.extract.moments import PixelShapes
from trapline.extract.morphology import binary_opening3
from trapline.extract.sky import (
    axes_covariance,
    beam_covariance,
    deconvolve,
    ellipse_from_covariance,
    local_jacobians,
    to_sky,
)
from trapline.image import Image

log = logging.getLogger(__name__)

MIN_VALID_PIXELS = 64


@dataclass
class Extraction:
    """Everything extraction learned about one image.

    ``residual`` (image minus background) and ``maps.rms`` are kept so forced fits at
    other positions can follow without recomputing the background.
    """

    image: Image
    sources: Catalogue
    maps: BackgroundMaps
    residual: np.ndarray
    n_islands: int
    skipped: dict[str, int] = field(default_factory=dict)
    n_deblended: int = 0

    def forced(self, ra: np.ndarray, dec: np.ndarray) -> ForcedMeasurements:
        """Forced fits at sky positions (deg)."""
        x, y = self.image.sky_to_pixel(np.atleast_1d(ra), np.atleast_1d(dec))
        return forced_fit_pixels(self.residual, self.maps.rms, self.image.pixel_beam(), x, y)

    def forced_pixels(self, x: np.ndarray, y: np.ndarray) -> ForcedMeasurements:
        return forced_fit_pixels(self.residual, self.maps.rms, self.image.pixel_beam(), x, y)


def check_pixels(image: Image) -> np.ndarray:
    """The image data as float32 with +-inf blanked; raises ImageError if unusable."""
    data = np.asarray(image.data, dtype=np.float32)
    finite = np.isfinite(data)
    n_valid = int(np.count_nonzero(finite))
    all_finite = n_valid == data.size
    if not all_finite and np.isinf(data).any():  # NaN is blank already; inf is not
        data = np.where(finite, data, np.float32(np.nan))
    where = image.path or "image"
    if n_valid < MIN_VALID_PIXELS:
        raise ImageError(
            "no_data", f"{where}: only {n_valid} finite pixels (need {MIN_VALID_PIXELS})"
        )
    # No copy of the valid pixels (a fifth of an all-sky image is blank).
    mask = None if all_finite else finite
    low = float(np.min(data, where=mask, initial=np.inf) if mask is not None else data.min())
    high = float(np.max(data, where=mask, initial=-np.inf) if mask is not None else data.max())
    if low == high:
        raise ImageError("flat", f"{where}: all pixels equal {low!r}: no noise to measure")
    return data


def extract(image: Image, config: ExtractionConfig | None = None) -> Extraction:
    """Find and measure the sources in an image.

    Raises:
        ImageError: the image has no usable pixels (all blanked, constant, too small).
    """
    config = config or ExtractionConfig()
    data = check_pixels(image)
    grid = min(config.grid, max(data.shape))
    blank = np.isnan(data)  # check_pixels made every non-finite pixel NaN
    maps = background_maps(data, grid, config.kappa, config.clip_iterations,
                           config.min_cell_fraction, blank=blank)
    if not np.isfinite(maps.rms).any():
        raise ImageError("no_data", f"{image.path or 'image'}: no cell has enough valid pixels")
    residual = data - maps.background
    islands = find_islands(
        residual, maps.rms, config.detection_sigma, config.analysis_sigma,
        margin=config.margin, max_pixels=config.max_island_pixels,
        remove_edge=config.remove_edge_islands,
        blanked=blanked_regions(blank) if config.remove_edge_islands else None,
    )
    skipped: dict[str, int] = {}
    n_deblended = 0
    if config.deblend:
        islands, n_deblended = deblend(islands, residual, config.analysis_sigma,
                                       config.deblend_levels, config.deblend_min_contrast)
    if islands.n_rejected_large:
        skipped["island_too_large"] = islands.n_rejected_large
    beam = image.pixel_beam()
    if config.method == "fit":
        shapes = fit_islands(islands, beam, config)
    else:
        shapes = refine_moments(islands, beam, config.analysis_sigma)
    n_bad = int((~shapes.ok).sum())
    if n_bad:
        skipped["unmeasurable"] = n_bad
        log.info("%s: %d islands could not be measured", image.path or "image", n_bad)
    catalogue = to_catalogue(image, _select(shapes, shapes.ok), islands.counts[shapes.ok])
    return Extraction(image, catalogue, maps, residual, len(islands), skipped, n_deblended)


def blanked_regions(blank: np.ndarray) -> np.ndarray | None:
    """Blanked regions of a mask of blank pixels: areas of at least 3x3 pixels (an
    all-sky horizon, a masked edge), not isolated flagged pixels, which do not truncate
    a source. None when nothing is blank."""
    if not blank.any():
        return None
    return binary_opening3(blank)


def _select(shapes: PixelShapes, mask: np.ndarray) -> PixelShapes:
    values = {k: getattr(shapes, k) for k in shapes.__dataclass_fields__}
    return PixelShapes(**{k: v if v is None else v[mask] for k, v in values.items()})


def to_catalogue(image: Image, shapes: PixelShapes, island_pixels: np.ndarray) -> Catalogue:
    """Convert pixel measurements and their errors to a sky catalogue.

    Errors come from the fit's covariance with correlated noise where it exists
    (``shapes.cov``), else from Condon (1997).
    """
    if len(shapes.x) == 0:
        return Catalogue.empty()
    beam = image.pixel_beam()
    errs = condon_errors(
        shapes.peak, shapes.rms, shapes.sig_maj, shapes.sig_min, beam.sigma_maj, beam.sigma_min
    )
    pos_cov_pix = axes_covariance(errs.along_major, errs.along_minor, shapes.theta)
    peak_err = errs.peak
    flux_rel_var = (errs.flux / shapes.peak / (shapes.sig_maj * shapes.sig_min)
                    * beam.sigma_maj * beam.sigma_min) ** 2
    smaj_err, smin_err, theta_err = errs.sig_maj, errs.sig_min, errs.theta
    if shapes.cov is not None:
        cov = shapes.cov
        have = np.isfinite(cov).all(axis=(1, 2)) & (np.einsum("nii->ni", cov) >= 0).all(axis=1)
        peak_err = np.where(have, np.sqrt(np.abs(cov[:, 0, 0])), peak_err)
        pos_cov_pix[have] = cov[have, 1:3, 1:3]
        shape_var = (errs.sig_maj / shapes.sig_maj) ** 2 + (errs.sig_min / shapes.sig_min) ** 2
        shape_term = beam.sigma_maj * beam.sigma_min / (shapes.sig_maj * shapes.sig_min)
        rel_peak_var = cov[:, 0, 0] / shapes.peak**2
        if cov.shape[1] == 6:
            # ln(flux) = ln(peak) + ln(sig_maj) + ln(sig_min) - const.
            grad = np.zeros((len(cov), 6))
            grad[:, 0] = 1.0 / shapes.peak
            grad[:, 3] = grad[:, 4] = 1.0
            fit_var = np.einsum("ni,nij,nj->n", grad, cov, grad)
            smaj_err = np.where(have, shapes.sig_maj * np.sqrt(np.abs(cov[:, 3, 3])), smaj_err)
            smin_err = np.where(have, shapes.sig_min * np.sqrt(np.abs(cov[:, 4, 4])), smin_err)
            theta_err = np.where(have, np.sqrt(np.abs(cov[:, 5, 5])), theta_err)
        else:
            fit_var = rel_peak_var + shape_term * shape_var
        flux_rel_var = np.where(have, fit_var, flux_rel_var)
    ra, dec, jac = local_jacobians(image.wcs, shapes.x, shapes.y)
    shape_sky = to_sky(jac, axes_covariance(shapes.sig_maj, shapes.sig_min, shapes.theta))
    smaj, smin, pa = ellipse_from_covariance(shape_sky)
    pos_sky = to_sky(jac, pos_cov_pix)
    # Axis errors scale with the axes; the sky scale of each axis is smaj/sig_maj.
    scale_maj = smaj / shapes.sig_maj
    scale_min = smin / shapes.sig_min
    dc_maj, dc_min, dc_pa = deconvolve(
        shape_sky, beam_covariance(image.beam.bmaj_deg, image.beam.bmin_deg, image.beam.bpa_deg)
    )
    flux = shapes.peak * shapes.sig_maj * shapes.sig_min / (beam.sigma_maj * beam.sigma_min)
    return Catalogue(
        ra_deg=ra,
        dec_deg=dec,
        ra_err_deg=np.sqrt(pos_sky[:, 0, 0]),
        dec_err_deg=np.sqrt(pos_sky[:, 1, 1]),
        x_pix=shapes.x,
        y_pix=shapes.y,
        peak_jy=shapes.peak,
        peak_err_jy=peak_err,
        flux_jy=flux,
        flux_err_jy=np.abs(flux) * np.sqrt(flux_rel_var),
        smaj_asec=smaj * 3600.0,
        smin_asec=smin * 3600.0,
        pa_deg=pa,
        smaj_err_asec=smaj_err * scale_maj * 3600.0,
        smin_err_asec=smin_err * scale_min * 3600.0,
        pa_err_deg=np.degrees(theta_err),
        dc_smaj_asec=dc_maj * 3600.0,
        dc_smin_asec=dc_min * 3600.0,
        dc_pa_deg=dc_pa,
        snr=shapes.peak / shapes.rms,
        rms_jy=shapes.rms,
        island_pixels=island_pixels.astype(np.int64),
    )
