"""Settings of a simulated observation: field, beam, noise, cadence, bands and populations.

A :class:`SimulationConfig` fully determines a simulated series: the same config (and
seed) always gives the same sky, images and truth.

To add a setting: one line, ``name: type = option(default, help, check=...)``
(:func:`trapline.options.option`); with ``group=OBSERVATION`` (or ``SOURCES``,
``EFFECTS``) it is also a ``trapline simulate`` flag, ``--name`` (or ``flag=``), with that
default and help. A rule between two settings goes in ``__post_init__``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.time import Time, TimeDelta
from astropy.wcs import WCS

from trapline.errors import ConfigError
from trapline.image import FWHM_PER_SIGMA, Beam, PixelBeam, beam_to_pixels
from trapline.options import at_least, check_options, non_negative, option, positive, rule
from trapline.scalars import FloatOrArray, scalar_or_array

DEFAULT_PIXEL_ARCSEC = 10.0
"""Pixel size (arcsec) of a normal (not all-sky) field when none is given."""

DEFAULT_BEAM_PIXELS = (4.0, 3.0, 30.0)
"""Default beam: FWHM major and minor axes in pixels, position angle (deg east of north)."""

RAD_DEG = 180.0 / math.pi
SIDEREAL_DEG_PER_S = 360.0 / 86164.0905
"""The sky's rotation rate (deg per second of time): once round per sidereal day."""

OBSERVATION, SOURCES, EFFECTS = "observation", "sources", "effects"
"""Groups of the settings that are also ``trapline simulate`` flags."""


def _iso_time(text: str) -> bool:
    try:
        Time(text, scale="utc")
    except ValueError:
        return False
    return True


min_max = rule(lambda v: 0 < v[0] <= v[1], "must be (min, max) with 0 < min <= max")


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated image series; each field's help is in its
    declaration (and in ``trapline simulate --help`` for those that are flags).

    Peak fluxes are drawn as signal-to-noise ratios ``snr * rms_jy``, so that the lower
    limit holds in the faintest band when there is a spectral index. Instrument effects
    are all off by default (see :mod:`trapline.simulate.effects`).
    """

    # ---- field and instrument
    seed: int = option(0, "random seed of every draw (sky, jitter and the noise of each image)",
                       group=OBSERVATION)
    epochs: int = option(8, "time steps", check=at_least(1), group=OBSERVATION)
    bands: int = option(1, "frequency bands per epoch (one image per band per epoch)",
                        check=at_least(1), group=OBSERVATION)
    size: int = option(512, "image side in pixels (images are size x size)",
                       check=at_least(16, "pixels"), group=OBSERVATION)
    pixel_arcsec: float | None = option(
        None, "pixel size in arcsec", check=positive, group=OBSERVATION, metavar="X",
        type=float, unset="10; with --allsky the size that fits the horizon")
    beam_arcsec: tuple[float, float, float] | None = option(
        None, "restoring beam FWHM major and minor axes (arcsec) and position angle (deg "
        "east of north)",
        check=rule(lambda v: len(v) == 3 and v[0] > 0 and v[1] > 0 and math.isfinite(v[2]),
                   "must be (major, minor, pa) with major, minor > 0"),
        group=OBSERVATION, metavar=("MAJ", "MIN", "PA"), type=float, nargs=3,
        unset="4 x 3 pixels at PA 30")
    rms_jy: float = option(1e-3, "noise rms per pixel in Jy/beam; fluxes are drawn in units "
                           "of it", check=positive, group=OBSERVATION, flag="rms", metavar="JY")
    cadence_s: float = option(1.0, "seconds between epochs, also the integration time",
                              check=positive, group=OBSERVATION, metavar="S")
    start_time: str = option(
        "2026-01-01T00:00:00", "DATE-OBS of the first epoch, UTC",
        check=rule(_iso_time, "must be an ISO time such as 2026-01-01T00:00:00"),
        group=OBSERVATION, flag="start", metavar="ISO")
    ra_deg: float = option(150.0, "field centre (the zenith in all-sky mode) RA in deg",
                           group=OBSERVATION, flag="ra")
    dec_deg: float = option(
        30.0, "field centre Dec in deg",
        check=rule(lambda v: -90.0 <= v <= 90.0, "must be in [-90, 90]"),
        group=OBSERVATION, flag="dec")
    freq_hz: float = option(150e6, "centre frequency; bands are spread evenly around it",
                            check=positive, group=OBSERVATION, flag="freq-mhz",
                            metavar="MHZ", scale=1e6)
    band_spacing_hz: float = option(5e6, "distance between band centres", check=non_negative,
                                    group=OBSERVATION, flag="band-spacing-mhz",
                                    metavar="MHZ", scale=1e6)
    bandwidth_hz: float = option(2e6, "bandwidth of each band image (Hz)", check=non_negative)
    allsky: bool = option(False, "AARTFAAC-like all-sky image: the horizon is a circle, NaN "
                          "beyond it (SIN projection; sources are only placed inside)",
                          group=OBSERVATION)
    drift: bool = option(False, "the centre's RA follows the sky's rotation (a zenith-pointed "
                         "all-sky monitor): every epoch has its own WCS", group=OBSERVATION)
    telescope: str = option("SIMULATED", "TELESCOP header value")

    # ---- populations
    n_steady: int = option(50, "steady sources, S/N 5 to 500 log-uniform", check=non_negative,
                           group=SOURCES, metavar="N")
    n_variable: int = option(10, "variable sources, lognormal modulation", check=non_negative,
                             group=SOURCES, metavar="N")
    n_transient: int = option(3, "transients: off, then on for a few epochs at >= 10 sigma, "
                              "then off", check=non_negative, group=SOURCES, metavar="N")
    n_fading: int = option(3, "fading sources, bright at the start and decaying",
                           check=non_negative, group=SOURCES, metavar="N")
    steady_snr: tuple[float, float] = option((5.0, 500.0), "(min, max) S/N of steady sources",
                                             check=min_max)
    steady_slope: float = option(1.0, "power-law index of the steady sources' flux "
                                 "distribution, dN/dS ~ S**-slope (1.0 is log-uniform)")
    variable_snr: tuple[float, float] = option(
        (20.0, 200.0), "(min, max) mean S/N of variable sources (log-uniform)", check=min_max)
    modulation_index: float = option(
        0.3, "std/mean of the variable sources' flux (lognormal, epoch to epoch)",
        check=non_negative, group=SOURCES, metavar="M")
    transient_snr: tuple[float, float] = option(
        (10.0, 100.0), "(min, max) S/N of transients while they are on (log-uniform)",
        check=min_max)
    transient_start_epoch: int | None = option(
        None, "epoch all transients turn on", group=SOURCES, flag="transient-start",
        metavar="EPOCH", type=int, unset="random, after the first epoch")
    transient_duration: int | None = option(
        None, "epochs transients stay on (cut at the end of the series)", check=at_least(1),
        group=SOURCES, metavar="N", type=int, unset="random, 1 to 3")
    max_transient_duration: int = option(3, "longest random transient duration (epochs)",
                                         check=at_least(1))
    fading_snr: tuple[float, float] = option(
        (50.0, 300.0), "(min, max) S/N of fading sources at epoch 0 (log-uniform)",
        check=min_max)
    fading_decay_epochs: tuple[float, float] = option(
        (1.0, 4.0), "(min, max) e-folding time (epochs) of fading sources", check=min_max)
    spectral_index: float = option(0.0, "mean spectral index, S ~ freq**alpha",
                                   group=SOURCES, metavar="ALPHA", zero="flat")
    spectral_index_scatter: float = option(0.0, "per-source scatter (std) of the spectral index",
                                           check=non_negative, group=SOURCES, metavar="X")

    # ---- placement
    min_separation_beams: float = option(
        5.0, "minimum source separation in beam FWHMs (major axis)", check=non_negative,
        group=SOURCES, metavar="X")
    edge_margin_beams: float = option(
        3.0, "minimum distance from the image edge or horizon (beam major FWHMs)",
        check=non_negative)
    jitter_arcsec: float = option(
        0.0, "rms per-epoch random position offset of each source (per axis, arcsec at the "
        "field centre, the same in all bands, clipped at 4 rms); truth.csv has the offset "
        "position", check=non_negative, group=SOURCES, metavar="X")

    # ---- instrument effects (all off by default; see trapline.simulate.effects)
    gain_scatter: float = option(
        0.0, "fractional rms of a per-image flux-scale error: the sources' fluxes in each "
        "image times a log-normal gain of mean 1 (the noise is not scaled)",
        check=non_negative, group=EFFECTS, metavar="X")
    iono_offset_arcsec: float = option(
        0.0, "rms per axis of a per-epoch ionospheric shift of the field, at --iono-ref-mhz, "
        "scaling as freq**-2", check=non_negative, group=EFFECTS, metavar="X")
    iono_gradient_arcsec_per_deg: float = option(
        0.0, "rms of each element of a per-epoch linear gradient of that shift across the "
        "field, arcsec per deg from the centre", check=non_negative, group=EFFECTS, metavar="X")
    iono_ref_freq_hz: float | None = option(
        None, "frequency the ionospheric rms values refer to", check=positive, group=EFFECTS,
        flag="iono-ref-mhz", metavar="MHZ", type=float, scale=1e6, unset="--freq-mhz")
    sidelobe_fraction: float = option(
        0.0, "sidelobe artefacts around bright sources, of this fraction of the source's "
        "apparent peak", check=non_negative, group=EFFECTS, metavar="F", zero="none")
    sidelobe_threshold_jy: float = option(
        0.1, "apparent peak (Jy/beam) from which a source has sidelobes in an image",
        check=non_negative, group=EFFECTS, metavar="JY")
    sidelobe_spokes: int = option(6, "artefacts per radius, evenly spaced in angle",
                                  check=at_least(1), group=EFFECTS, metavar="N")
    sidelobe_radii_beams: tuple[float, ...] = option(
        (3.0,), "distances of the artefacts from their source, in beam FWHMs",
        check=rule(lambda v: len(v) >= 1 and min(v) > 0, "must be one or more distances > 0"),
        group=EFFECTS, metavar="R")
    sidelobe_rotation_deg: float = option(
        0.0, "angle the sidelobe pattern turns by per epoch (an earth-fixed array's beam "
        "turning on the sky; at epoch 0 the first spoke points along +x)",
        check=rule(math.isfinite, "must be finite"), group=EFFECTS, metavar="DEG")
    scintillation_index: float = option(
        0.0, "modulation index (std/mean) of an independent per-image log-normal flux "
        "modulation of every (compact) source", check=non_negative, group=EFFECTS, metavar="M")

    def __post_init__(self) -> None:
        check_options(self, lambda name: f"simulation option {name}:")
        _check(self.freqs_hz.min() > 0, "band_spacing_hz", "puts a band below 0 Hz")
        if self.transient_start_epoch is not None:
            _check(
                0 <= self.transient_start_epoch < self.epochs,
                "transient_start_epoch",
                f"must be in [0, {self.epochs - 1}]",
            )

    # ---- derived geometry -------------------------------------------------------------

    @property
    def n_sources(self) -> int:
        return self.n_steady + self.n_variable + self.n_transient + self.n_fading

    @property
    def pixel_deg(self) -> float:
        """Pixel size (deg)."""
        if self.pixel_arcsec is not None:
            return self.pixel_arcsec / 3600.0
        if self.allsky:
            return RAD_DEG / (self.size / 2.0 - 1.0)
        return DEFAULT_PIXEL_ARCSEC / 3600.0

    @property
    def beam(self) -> Beam:
        """The restoring beam (the same in every band)."""
        if self.beam_arcsec is not None:
            bmaj, bmin, bpa = self.beam_arcsec
            return Beam(bmaj / 3600.0, bmin / 3600.0, float(bpa))
        bmaj_pix, bmin_pix, bpa = DEFAULT_BEAM_PIXELS
        return Beam(bmaj_pix * self.pixel_deg, bmin_pix * self.pixel_deg, bpa)

    @property
    def fwhm_pix(self) -> float:
        """Major-axis FWHM of the beam (pixels) at the field centre: the unit of the
        separations, margins and sidelobe radii given in beams."""
        return self.pixel_beam().sigma_maj * FWHM_PER_SIGMA

    @property
    def center_pix(self) -> tuple[float, float]:
        """0-based (x, y) of the field centre (the reference pixel)."""
        c = (self.size - 1) / 2.0
        return c, c

    @property
    def sky_radius_pix(self) -> float | None:
        """All-sky mode: radius (pixels) of the visible circle (the horizon, or the largest
        circle in the image if the horizon does not fit). ``None`` otherwise."""
        if not self.allsky:
            return None
        return min(RAD_DEG / self.pixel_deg, self.size / 2.0 - 1.0)

    def wcs(self, epoch: int = 0) -> WCS:
        """A new 2-D celestial WCS of an epoch: RA---SIN/DEC--SIN centred on (ra_deg,
        dec_deg), the RA moved by the sidereal drift when ``drift``."""
        wcs = WCS(naxis=2)
        cx, cy = self.center_pix
        drift = SIDEREAL_DEG_PER_S * epoch * self.cadence_s if self.drift else 0.0
        wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
        wcs.wcs.cunit = ["deg", "deg"]
        wcs.wcs.crval = [(self.ra_deg + drift) % 360.0, self.dec_deg]
        wcs.wcs.crpix = [cx + 1.0, cy + 1.0]
        wcs.wcs.cdelt = [-self.pixel_deg, self.pixel_deg]
        wcs.wcs.radesys = "ICRS"
        wcs.wcs.set()
        return wcs

    def pixels_at(self, epoch: int, x: FloatOrArray, y: FloatOrArray) -> tuple[FloatOrArray,
                                                                                FloatOrArray]:
        """Where the sky at pixels (x, y) of epoch 0 lies in the image of ``epoch``
        (0-based pixels; the same without drift): floats for scalar input, else arrays."""
        if not self.drift or epoch == 0:
            return scalar_or_array(x), scalar_or_array(y)
        ra, dec = self.wcs(0).all_pix2world(x, y, 0)
        with np.errstate(invalid="ignore"):
            x, y = self.wcs(epoch).all_world2pix(ra, dec, 0)
        return scalar_or_array(x), scalar_or_array(y)

    def pixel_beam(self, wcs: WCS | None = None) -> PixelBeam:
        """The beam in pixels at the field centre (constant over the image: in the SIN
        projection the synthesised beam is shift-invariant)."""
        return beam_to_pixels(self.beam, wcs or self.wcs(), at=self.center_pix)

    # ---- time and frequency -----------------------------------------------------------

    @property
    def freqs_hz(self) -> np.ndarray:
        """Centre frequency of each band (Hz), increasing."""
        offsets = np.arange(self.bands) - (self.bands - 1) / 2.0
        return self.freq_hz + offsets * self.band_spacing_hz

    def start_of(self, epoch: int) -> Time:
        """DATE-OBS (start of integration) of an epoch."""
        return Time(self.start_time, scale="utc") + TimeDelta(epoch * self.cadence_s, format="sec")

    def time_mjd(self, epoch: int) -> float:
        """Mid-integration time (MJD, UTC) of an epoch: what Image.time_mjd holds."""
        mid = self.start_of(epoch) + TimeDelta(self.cadence_s / 2.0, format="sec")
        return float(mid.mjd)

    def image_name(self, epoch: int, band: int) -> str:
        """File name of an image, e.g. ``epoch0003_band1.fits`` (sorts by epoch, band)."""
        ew = max(4, len(str(self.epochs - 1)))
        bw = len(str(self.bands - 1))
        return f"epoch{epoch:0{ew}d}_band{band:0{bw}d}.fits"


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"simulation option {name}: {message}")
