"""The in-memory image every stage works on.

An :class:`Image` is a 2-D array of brightness (Jy/beam) with its celestial WCS,
restoring beam, observation time and frequency. Readers (``trapline.io``) build it
from FITS or CASA files, the stream listener from bytes, tests directly from arrays.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from astropy.wcs import WCS

from trapline.scalars import FloatOrArray, scalar_or_array
from trapline.wcstext import wcs_from_text, wcs_to_text

FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass(frozen=True)
class Beam:
    """Restoring beam: full widths at half maximum (deg) and position angle (deg, east of north)."""

    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float

    def __post_init__(self) -> None:
        if not (np.isfinite(self.bmaj_deg) and np.isfinite(self.bmin_deg)):
            raise ValueError("beam axes must be finite")
        if self.bmaj_deg <= 0 or self.bmin_deg <= 0:
            raise ValueError("beam axes must be positive")
        if self.bmin_deg > self.bmaj_deg:
            # Some writers swap the axes; keep the convention major >= minor.
            bmaj, bmin = self.bmin_deg, self.bmaj_deg
            object.__setattr__(self, "bmaj_deg", bmaj)
            object.__setattr__(self, "bmin_deg", bmin)
            object.__setattr__(self, "bpa_deg", self.bpa_deg + 90.0)


@dataclass(frozen=True)
class PixelBeam:
    """The beam in pixel units: Gaussian sigmas (pixels) and the angle (radians) of the
    major axis measured from the +x (column) axis towards +y (row)."""

    sigma_maj: float
    sigma_min: float
    theta: float

    @property
    def covariance(self) -> np.ndarray:
        """2x2 covariance (pixels^2) in (x, y) order."""
        c, s = math.cos(self.theta), math.sin(self.theta)
        rot = np.array([[c, -s], [s, c]])
        return rot @ np.diag([self.sigma_maj**2, self.sigma_min**2]) @ rot.T

    @property
    def area_pixels(self) -> float:
        """Beam area 2*pi*sigma_maj*sigma_min in pixels (integral of a unit-peak beam)."""
        return 2.0 * math.pi * self.sigma_maj * self.sigma_min


@dataclass
class Image:
    """One 2-D sky image.

    Attributes:
        data: brightness, Jy/beam, shape (ny, nx), indexed ``data[y, x]``; NaN marks blanked pixels.
        wcs: 2-D celestial WCS (pixel <-> RA/Dec, degrees).
        beam: restoring beam.
        time_mjd: observation time (mid-integration), MJD (UTC).
        freq_hz: centre frequency, Hz.
        bandwidth_hz: bandwidth, Hz (0 if unknown).
        integration_s: integration time, s (0 if unknown).
        telescope: telescope name ('' if unknown).
        path: where it came from ('' for in-memory images).
    """

    data: np.ndarray
    wcs: WCS
    beam: Beam
    time_mjd: float
    freq_hz: float
    bandwidth_hz: float = 0.0
    integration_s: float = 0.0
    telescope: str = ""
    path: str = ""
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data.ndim != 2:
            raise ValueError(f"image data must be 2-D, got shape {self.data.shape}")
        if self.wcs.pixel_n_dim != 2 or not self.wcs.has_celestial:
            raise ValueError("image WCS must be 2-D celestial")

    def __getstate__(self) -> dict:
        # The WCS travels as header text, parsed once per process and pointing
        # (see trapline.wcstext); its time cards stay behind, time_mjd has the time.
        state = self.__dict__.copy()
        text = wcs_to_text(self.wcs)
        if text is not None:
            state["wcs"] = _WcsText(text)
        return state

    def __setstate__(self, state: dict) -> None:
        if isinstance(state.get("wcs"), _WcsText):
            state = {**state, "wcs": wcs_from_text(state["wcs"].text)}
        self.__dict__.update(state)

    @property
    def shape(self) -> tuple[int, int]:
        return self.data.shape  # type: ignore[return-value]

    @property
    def pixel_scale_deg(self) -> tuple[float, float]:
        """Pixel size along x and y (deg) at the reference pixel."""
        scales = self.wcs.proj_plane_pixel_scales()
        return float(scales[0].to_value("deg")), float(scales[1].to_value("deg"))

    def pixel_beam(self) -> PixelBeam:
        """The restoring beam in pixel units at the image centre.

        The position angle is east of north on the sky; the angle of north and east in
        pixel space is taken from the WCS so rotated (CROTA2, CD, PC) images are right.
        """
        ny, nx = self.data.shape
        return beam_to_pixels(self.beam, self.wcs, at=((nx - 1) / 2.0, (ny - 1) / 2.0))

    def sky_to_pixel(self, ra: FloatOrArray, dec: FloatOrArray) -> tuple[FloatOrArray,
                                                                          FloatOrArray]:
        """RA/Dec (deg) to 0-based pixel x, y: floats for scalar input, else arrays."""
        x, y = self.wcs.all_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
        return scalar_or_array(x), scalar_or_array(y)

    def pixel_to_sky(self, x: FloatOrArray, y: FloatOrArray) -> tuple[FloatOrArray,
                                                                      FloatOrArray]:
        """0-based pixel x, y to RA/Dec (deg), RA in [0, 360): floats for scalar input,
        else arrays."""
        ra, dec = self.wcs.all_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
        return scalar_or_array(np.mod(ra, 360.0)), scalar_or_array(dec)


@dataclass(frozen=True)
class _WcsText:
    """A pickled Image's WCS, as header text."""

    text: str


def beam_to_pixels(beam: Beam, wcs: WCS, at: tuple[float, float] | None = None) -> PixelBeam:
    """Project the sky beam into pixel space using the local WCS Jacobian.

    The beam ellipse (FWHM, PA east of north) is mapped through the linear pixel<->sky
    transform at ``at`` (0-based x, y; default the reference pixel), which handles
    rotation, skew and unequal pixel sizes exactly to first order.
    """
    if at is None:
        x0, y0 = (float(v) for v in wcs.wcs.crpix - 1.0)
    else:
        x0, y0 = at
    # Local Jacobian d(xi, eta)/d(x, y) in degrees, xi towards east, eta towards north.
    eps = 0.5
    ra0, dec0 = wcs.all_pix2world([[x0, y0]], 0)[0]
    pts = wcs.all_pix2world([[x0 + eps, y0], [x0, y0 + eps]], 0)
    cosd = math.cos(math.radians(dec0))
    dra = (pts[:, 0] - ra0 + 180.0) % 360.0 - 180.0
    jac = np.array(
        [
            [dra[0] * cosd / eps, dra[1] * cosd / eps],
            [(pts[0, 1] - dec0) / eps, (pts[1, 1] - dec0) / eps],
        ]
    )
    # Beam covariance on the sky (deg^2) in (east, north).
    smaj = beam.bmaj_deg / FWHM_PER_SIGMA
    smin = beam.bmin_deg / FWHM_PER_SIGMA
    pa = math.radians(beam.bpa_deg)
    major_dir = np.array([math.sin(pa), math.cos(pa)])  # east, north
    minor_dir = np.array([math.cos(pa), -math.sin(pa)])
    cov_sky = smaj**2 * np.outer(major_dir, major_dir) + smin**2 * np.outer(minor_dir, minor_dir)
    jinv = np.linalg.inv(jac)
    cov_pix = jinv @ cov_sky @ jinv.T
    evals, evecs = np.linalg.eigh(cov_pix)
    sig_min, sig_maj = np.sqrt(np.clip(evals, 0, None))
    vx, vy = evecs[:, 1]
    return PixelBeam(float(sig_maj), float(sig_min), float(math.atan2(vy, vx)))
