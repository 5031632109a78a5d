"""Settings of a simulated observation: field, beam, noise, cadence, bands and populations.

A :class:`SimulationConfig` fully determines a simulated series: the same config (and
seed) always gives the same sky, images and truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from astropy.time import Time, TimeDelta
from astropy.wcs import WCS

from trapline.errors import ConfigError
from trapline.image import FWHM_PER_SIGMA, Beam, PixelBeam, beam_to_pixels
from trapline.scalars import FloatOrArray, scalar_or_array

DEFAULT_PIXEL_ARCSEC = 10.0
"""Pixel size (arcsec) of a normal (not all-sky) field when none is given."""

DEFAULT_BEAM_PIXELS = (4.0, 3.0, 30.0)
"""Default beam: FWHM major and minor axes in pixels, position angle (deg east of north)."""

RAD_DEG = 180.0 / math.pi
SIDEREAL_DEG_PER_S = 360.0 / 86164.0905
"""The sky's rotation rate (deg per second of time): once round per sidereal day."""


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated image series.

    Field and instrument:
        seed: seed of every random draw (sky, jitter and the noise of each image).
        epochs: number of time steps.
        bands: number of frequency bands; one image per band per epoch.
        size: image side (pixels); images are ``size x size``.
        pixel_arcsec: pixel size (arcsec). ``None``: 10 arcsec, or in all-sky mode the
            size that puts the horizon on a circle of radius ``size/2 - 1`` pixels.
        beam_arcsec: restoring beam (FWHM major, FWHM minor in arcsec, PA in deg east of
            north). ``None``: 4 x 3 pixels at PA 30 deg.
        rms_jy: pixel rms of the noise (Jy/beam); fluxes are drawn in units of it.
        cadence_s: time between epochs (s); each image integrates for this long.
        start_time: DATE-OBS (start of integration) of epoch 0, ISO UTC.
        ra_deg, dec_deg: field centre (the zenith in all-sky mode), degrees.
        freq_hz: centre frequency (Hz); the bands are spread evenly around it.
        band_spacing_hz: distance between neighbouring band centres (Hz).
        bandwidth_hz: bandwidth of each band image (Hz).
        allsky: AARTFAAC-like all-sky image: SIN projection with the horizon on a circle;
            pixels beyond it are NaN and sources are only placed inside.
        drift: the field centre turns with the sky, as a zenith-pointed all-sky
            monitor's does: its RA grows at the sidereal rate (15.04 arcsec per second
            of the series), so every epoch has its own WCS and the sources move across
            the image (and may set below an all-sky image's horizon).
        telescope: TELESCOP header value.

    Populations (peak fluxes are drawn as signal-to-noise ratios ``snr * rms_jy``, so that
    the lower limit holds in the faintest band when there is a spectral index):
        n_steady, n_variable, n_transient, n_fading: number of sources of each kind.
        steady_snr: (min, max) S/N of steady sources.
        steady_slope: power-law index of their flux distribution, dN/dS ~ S**-slope
            (1.0 is log-uniform).
        variable_snr: (min, max) mean S/N of variable sources (log-uniform).
        modulation_index: std/mean of the lognormal epoch-to-epoch modulation of variables.
        transient_snr: (min, max) S/N of transients while they are on (log-uniform).
        transient_start_epoch: first epoch transients are on; ``None``: random in
            ``[1, epochs - 1]`` (0 when there is a single epoch).
        transient_duration: epochs a transient stays on; ``None``: random in
            ``[1, max_transient_duration]`` (cut at the end of the series).
        max_transient_duration: longest random transient duration (epochs).
        fading_snr: (min, max) S/N of fading sources at epoch 0 (log-uniform).
        fading_decay_epochs: (min, max) e-folding time (epochs) of fading sources.
        spectral_index: mean spectral index alpha (S ~ freq**alpha) of all sources.
        spectral_index_scatter: standard deviation of the per-source spectral index.

    Placement:
        min_separation_beams: minimum distance between sources (beam major FWHMs).
        edge_margin_beams: minimum distance from the image edge or horizon (major FWHMs).
        jitter_arcsec: rms (per axis, arcsec at the field centre) of a random offset of each
            source in each epoch, the same in all bands (ionosphere-like); clipped at 4 rms.

    Instrument effects (all off by default; see :mod:`trapline.simulate.effects`):
        gain_scatter: fractional rms of a per-image flux scale (calibration) error: every
            source's flux in an image (epoch and band) is multiplied by a log-normal gain
            of mean 1 and this std, drawn per image; the noise is not scaled.
        iono_offset_arcsec: rms (per axis, arcsec at ``iono_ref_freq_hz``) of a per-epoch
            shift of the whole field by the ionosphere.
        iono_gradient_arcsec_per_deg: rms of each element of a per-epoch 2x2 linear
            gradient of that shift across the field (arcsec of shift per degree from the
            field centre, at ``iono_ref_freq_hz``). Offset and gradient are the same
            ionosphere in all bands, scaled by ``(freq / iono_ref_freq_hz) ** -2``.
        iono_ref_freq_hz: frequency the ionospheric rms values refer to (Hz); ``None``:
            ``freq_hz``.
        sidelobe_fraction: peak of each sidelobe artefact as a fraction of its source's
            apparent peak; 0: no sidelobes.
        sidelobe_threshold_jy: only sources with an apparent peak of at least this
            (Jy/beam) in an image have sidelobes in it.
        sidelobe_spokes: number of artefacts per radius, evenly spaced in angle.
        sidelobe_radii_beams: distances of the artefacts from their source (beam major
            FWHMs); ``sidelobe_spokes`` artefacts at each.
        sidelobe_rotation_deg: angle (deg) the pattern turns by from one epoch to the next
            (an earth-fixed array's beam turning on the sky); at epoch 0 the first spoke
            points along +x.
        scintillation_index: modulation index (std/mean) of a log-normal flux modulation
            of every compact source (all simulated sources are point sources), drawn
            independently per source and image.
    """

    seed: int = 0
    epochs: int = 8
    bands: int = 1
    size: int = 512
    pixel_arcsec: float | None = None
    beam_arcsec: tuple[float, float, float] | None = None
    rms_jy: float = 1e-3
    cadence_s: float = 1.0
    start_time: str = "2026-01-01T00:00:00"
    ra_deg: float = 150.0
    dec_deg: float = 30.0
    freq_hz: float = 150e6
    band_spacing_hz: float = 5e6
    bandwidth_hz: float = 2e6
    allsky: bool = False
    drift: bool = False
    telescope: str = "SIMULATED"

    n_steady: int = 50
    n_variable: int = 10
    n_transient: int = 3
    n_fading: int = 3
    steady_snr: tuple[float, float] = (5.0, 500.0)
    steady_slope: float = 1.0
    variable_snr: tuple[float, float] = (20.0, 200.0)
    modulation_index: float = 0.3
    transient_snr: tuple[float, float] = (10.0, 100.0)
    transient_start_epoch: int | None = None
    transient_duration: int | None = None
    max_transient_duration: int = 3
    fading_snr: tuple[float, float] = (50.0, 300.0)
    fading_decay_epochs: tuple[float, float] = (1.0, 4.0)
    spectral_index: float = 0.0
    spectral_index_scatter: float = 0.0

    min_separation_beams: float = 5.0
    edge_margin_beams: float = 3.0
    jitter_arcsec: float = 0.0

    gain_scatter: float = 0.0
    iono_offset_arcsec: float = 0.0
    iono_gradient_arcsec_per_deg: float = 0.0
    iono_ref_freq_hz: float | None = None
    sidelobe_fraction: float = 0.0
    sidelobe_threshold_jy: float = 0.1
    sidelobe_spokes: int = 6
    sidelobe_radii_beams: tuple[float, ...] = (3.0,)
    sidelobe_rotation_deg: float = 0.0
    scintillation_index: float = 0.0

    def __post_init__(self) -> None:
        _check(self.epochs >= 1, "epochs", "must be at least 1")
        _check(self.bands >= 1, "bands", "must be at least 1")
        _check(self.size >= 16, "size", "must be at least 16 pixels")
        _check(self.pixel_arcsec is None or self.pixel_arcsec > 0, "pixel_arcsec", "must be > 0")
        if self.beam_arcsec is not None:
            _check(len(self.beam_arcsec) == 3, "beam_arcsec", "must be (major, minor, pa)")
            bmaj, bmin, bpa = self.beam_arcsec
            _check(bmaj > 0 and bmin > 0 and math.isfinite(bpa), "beam_arcsec", "must be > 0")
        _check(self.rms_jy > 0, "rms_jy", "must be > 0")
        _check(self.cadence_s > 0, "cadence_s", "must be > 0")
        _check(-90.0 <= self.dec_deg <= 90.0, "dec_deg", "must be in [-90, 90]")
        _check(self.freq_hz > 0, "freq_hz", "must be > 0")
        _check(self.band_spacing_hz >= 0, "band_spacing_hz", "must be >= 0")
        _check(self.freqs_hz.min() > 0, "band_spacing_hz", "puts a band below 0 Hz")
        _check(self.bandwidth_hz >= 0, "bandwidth_hz", "must be >= 0")
        for name in ("n_steady", "n_variable", "n_transient", "n_fading"):
            _check(getattr(self, name) >= 0, name, "must be >= 0")
        for name in ("steady_snr", "variable_snr", "transient_snr", "fading_snr"):
            lo, hi = getattr(self, name)
            _check(0 < lo <= hi, name, "must be (min, max) with 0 < min <= max")
        lo, hi = self.fading_decay_epochs
        _check(0 < lo <= hi, "fading_decay_epochs", "must be (min, max) with 0 < min <= max")
        _check(self.modulation_index >= 0, "modulation_index", "must be >= 0")
        _check(self.spectral_index_scatter >= 0, "spectral_index_scatter", "must be >= 0")
        _check(self.max_transient_duration >= 1, "max_transient_duration", "must be >= 1")
        if self.transient_start_epoch is not None:
            _check(
                0 <= self.transient_start_epoch < self.epochs,
                "transient_start_epoch",
                f"must be in [0, {self.epochs - 1}]",
            )
        if self.transient_duration is not None:
            _check(self.transient_duration >= 1, "transient_duration", "must be >= 1")
        _check(self.min_separation_beams >= 0, "min_separation_beams", "must be >= 0")
        _check(self.edge_margin_beams >= 0, "edge_margin_beams", "must be >= 0")
        _check(self.jitter_arcsec >= 0, "jitter_arcsec", "must be >= 0")
        for name in (
            "gain_scatter",
            "iono_offset_arcsec",
            "iono_gradient_arcsec_per_deg",
            "sidelobe_fraction",
            "sidelobe_threshold_jy",
            "scintillation_index",
        ):
            _check(getattr(self, name) >= 0, name, "must be >= 0")
        _check(
            self.iono_ref_freq_hz is None or self.iono_ref_freq_hz > 0, "iono_ref_freq_hz",
            "must be > 0",
        )
        _check(self.sidelobe_spokes >= 1, "sidelobe_spokes", "must be at least 1")
        _check(
            len(self.sidelobe_radii_beams) >= 1 and min(self.sidelobe_radii_beams) > 0,
            "sidelobe_radii_beams",
            "must be one or more distances > 0",
        )
        _check(math.isfinite(self.sidelobe_rotation_deg), "sidelobe_rotation_deg", "must be finite")
        try:
            Time(self.start_time, scale="utc")
        except ValueError as exc:
            raise ConfigError(f"start_time: not an ISO time ({self.start_time!r})") from exc

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
