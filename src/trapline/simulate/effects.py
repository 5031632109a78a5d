"""What the instrument does to the sky before it is imaged.

Four effects of a real low-frequency array, each off by default
(:class:`~trapline.simulate.config.SimulationConfig`):

* **gain errors**: every source's flux in an image is multiplied by that image's gain
  (log-normal, mean 1, std ``gain_scatter``), drawn per epoch and band; the noise is not.
* **ionosphere**: per epoch, a shift of the whole field plus a linear gradient of the
  shift across it (Gaussian, rms ``iono_offset_arcsec`` and
  ``iono_gradient_arcsec_per_deg``), the same screen in every band scaled by
  ``(freq / iono_ref_freq_hz) ** -2``. Sources are rendered where it puts them.
* **scintillation**: a log-normal factor of mean 1 and std ``scintillation_index`` on
  every source (all simulated sources are compact), independent per source and image.
* **sidelobes**: around each source whose apparent peak reaches
  ``sidelobe_threshold_jy``, ``sidelobe_spokes`` beam-shaped artefacts at each of
  ``sidelobe_radii_beams``, of peak ``sidelobe_fraction`` times the source's apparent
  peak, the pattern turned by ``sidelobe_rotation_deg`` per epoch.

The apparent flux of a source is ``sky flux * gain * scintillation``. Every effect draws
from its own generator (:func:`~trapline.simulate.sky.derived_rng` keys
``(2, epoch)`` ionosphere, ``(3, epoch, band)`` gain, ``(4, epoch, band)``
scintillation), so turning one on changes nothing else, and with all of them off the
images are those of the sky alone, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trapline.simulate.config import SimulationConfig
from trapline.simulate.sky import SkyModel, derived_rng, lognormal


@dataclass(frozen=True)
class ImageEffects:
    """The instrument's state in one image (epoch and band).

    Attributes:
        gain: factor on every source's flux.
        iono_offset_arcsec: (2,) shift of the field along the image's +x and +y pixel
            axes (arcsec), at this band's frequency.
        iono_gradient_arcsec_per_deg: (2, 2) matrix G: a source ``d`` degrees (x, y, in
            the projection plane) from the field centre is shifted by an extra ``G @ d``
            arcsec, at this band's frequency.
        sidelobe_angle_deg: direction of the first sidelobe spoke, counter-clockwise
            from the +x axis in pixel coordinates (deg).
    """

    gain: float
    iono_offset_arcsec: np.ndarray
    iono_gradient_arcsec_per_deg: np.ndarray
    sidelobe_angle_deg: float

    @property
    def has_ionosphere(self) -> bool:
        return bool(self.iono_offset_arcsec.any() or self.iono_gradient_arcsec_per_deg.any())


def image_effects(config: SimulationConfig, epoch: int, band: int) -> ImageEffects:
    """The gain, ionosphere and sidelobe angle of one image (deterministic for the seed)."""
    gain = float(lognormal(derived_rng(config.seed, 3, epoch, band), config.gain_scatter, 1)[0])
    rng = derived_rng(config.seed, 2, epoch)  # one screen per epoch, shared by the bands
    offset = rng.normal(0.0, config.iono_offset_arcsec, 2)
    gradient = rng.normal(0.0, config.iono_gradient_arcsec_per_deg, (2, 2))
    ref = config.freq_hz if config.iono_ref_freq_hz is None else config.iono_ref_freq_hz
    scale = (float(config.freqs_hz[band]) / ref) ** -2
    angle = (epoch * config.sidelobe_rotation_deg) % 360.0
    return ImageEffects(gain, scale * offset, scale * gradient, angle)


@dataclass(frozen=True)
class ApparentSky:
    """The sources as one image shows them; arrays per source (as in the :class:`SkyModel`).

    Attributes:
        x, y: rendered 0-based pixel position in this image (jitter and ionosphere).
        ra, dec: the same on the sky (deg); for a source below an all-sky horizon the
            position without the ionosphere.
        sky_x, sky_y: the catalogue position (no jitter, no ionosphere) in this image.
        peak_jy: the sky's (true) peak in this band (Jy/beam), before the instrument.
        scintillation: the scintillation factor of each source in this image.
        apparent_peak_jy: ``peak_jy * gain * scintillation``, what is rendered.
        visible: inside an all-sky image's horizon (always True otherwise).
    """

    x: np.ndarray
    y: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    sky_x: np.ndarray
    sky_y: np.ndarray
    peak_jy: np.ndarray
    scintillation: np.ndarray
    apparent_peak_jy: np.ndarray
    visible: np.ndarray


def apparent_sky(
    config: SimulationConfig, sky: SkyModel, epoch: int, band: int, effects: ImageEffects
) -> ApparentSky:
    """Where and how bright every source appears in one image."""
    x0, y0 = sky.positions(epoch)
    ra, dec = config.wcs().all_pix2world(x0, y0, 0)
    x, y = config.pixels_at(epoch, x0, y0)
    if effects.has_ionosphere:
        dx, dy = ionospheric_shift(config, effects, x, y)
        x, y = x + dx, y + dy
        with np.errstate(invalid="ignore"):
            ra_app, dec_app = config.wcs(epoch).all_pix2world(x, y, 0)
        shown = np.isfinite(ra_app)
        ra, dec = np.where(shown, ra_app, ra), np.where(shown, dec_app, dec)
    sky_x, sky_y = config.pixels_at(epoch, sky.x, sky.y)
    peak = sky.peak_jy(epoch, float(config.freqs_hz[band]))
    scint = lognormal(
        derived_rng(config.seed, 4, epoch, band), config.scintillation_index, len(sky)
    )
    return ApparentSky(
        x=x,
        y=y,
        ra=np.mod(ra, 360.0),
        dec=dec,
        sky_x=sky_x,
        sky_y=sky_y,
        peak_jy=peak,
        scintillation=scint,
        apparent_peak_jy=peak * effects.gain * scint,
        visible=on_sky(config, x, y),
    )


def ionospheric_shift(
    config: SimulationConfig, effects: ImageEffects, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Shift (pixels, along x and y) the ionosphere gives to positions (x, y) of an image:
    ``offset + G @ d`` arcsec with ``d`` the distance from the centre in degrees."""
    cx, cy = config.center_pix
    d = np.stack([np.asarray(x, float) - cx, np.asarray(y, float) - cy]) * config.pixel_deg
    shift = effects.iono_offset_arcsec[:, None] + effects.iono_gradient_arcsec_per_deg @ d
    shift /= 3600.0 * config.pixel_deg
    return shift[0], shift[1]


def on_sky(
    config: SimulationConfig, x: np.ndarray, y: np.ndarray, in_image: bool = False
) -> np.ndarray:
    """Positions inside an all-sky image's horizon (all, for a normal field); with
    ``in_image``, those whose nearest pixel is in the image and inside the horizon."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(x) & np.isfinite(y)
        if in_image:
            x, y = np.rint(x), np.rint(y)
            ok &= (x >= 0) & (x < config.size) & (y >= 0) & (y < config.size)
        if config.sky_radius_pix is not None:
            cx, cy = config.center_pix
            ok &= np.hypot(x - cx, y - cy) <= config.sky_radius_pix
    return ok


@dataclass(frozen=True)
class Sidelobes:
    """The sidelobe artefacts of one image, arrays per artefact.

    Attributes:
        source_id: the source whose sidelobe it is.
        spoke: index of its spoke (0 is at ``sidelobe_angle_deg``).
        radius_beams: distance from the source (beam major FWHMs).
        angle_deg: its direction from the source, counter-clockwise from +x (deg).
        x, y: 0-based pixel position (its nearest pixel is in the image, inside any
            horizon).
        peak_jy: peak (Jy/beam); the artefact has the shape of the beam.
    """

    source_id: np.ndarray
    spoke: np.ndarray
    radius_beams: np.ndarray
    angle_deg: np.ndarray
    x: np.ndarray
    y: np.ndarray
    peak_jy: np.ndarray


def sidelobes(
    config: SimulationConfig, apparent: ApparentSky, effects: ImageEffects, source_id: np.ndarray
) -> Sidelobes:
    """The sidelobe artefacts of the visible sources whose apparent peak reaches
    ``sidelobe_threshold_jy`` (none when ``sidelobe_fraction`` is 0), around their
    apparent positions; artefacts off the image or beyond the horizon are left out."""
    bright = (
        apparent.visible
        & (apparent.apparent_peak_jy > 0)
        & (apparent.apparent_peak_jy >= config.sidelobe_threshold_jy)
    )
    if config.sidelobe_fraction == 0:
        bright[:] = False
    parents = np.flatnonzero(bright)
    spokes = np.arange(config.sidelobe_spokes)
    radii = np.asarray(config.sidelobe_radii_beams, float)
    # (parent, radius, spoke) grids, flattened in that order.
    src, rad, spk = (a.ravel() for a in np.meshgrid(parents, radii, spokes, indexing="ij"))
    angle = (effects.sidelobe_angle_deg + 360.0 * spk / config.sidelobe_spokes) % 360.0
    r_pix = rad * config.fwhm_pix
    x = apparent.x[src] + r_pix * np.cos(np.radians(angle))
    y = apparent.y[src] + r_pix * np.sin(np.radians(angle))
    keep = on_sky(config, x, y, in_image=True)
    return Sidelobes(
        source_id=np.asarray(source_id)[src][keep],
        spoke=spk[keep],
        radius_beams=rad[keep],
        angle_deg=angle[keep],
        x=x[keep],
        y=y[keep],
        peak_jy=config.sidelobe_fraction * apparent.apparent_peak_jy[src][keep],
    )
