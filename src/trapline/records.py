"""The vocabulary of every package: what the pipeline decides about one image (handed to
storage and to subscribers), what a stored run gives back to resume, and the
variability statistics both compute.

Every calculation happens in memory; these records carry its outcome. They are plain
dataclasses of scalars and numpy columns so that they pickle cheaply between
processes, serialise to a broker and bulk-insert into the database. A stage makes new
records; no later stage rewrites one (``ImageRecord`` is frozen: use
``dataclasses.replace``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import TypeVar

import numpy as np

# Measurement kinds, stored as small integers in memory and as text in the database.
# PRECOVERY: a forced fit of a new source on an earlier image, made when it appeared.
BLIND, FORCED, MONITOR, PRECOVERY = 0, 1, 2, 3
KIND_NAMES = {BLIND: "blind", FORCED: "forced", MONITOR: "monitor", PRECOVERY: "precovery"}


@dataclass(frozen=True)
class ImageRecord:
    """One image's metadata and quality-control outcome.

    ``image_key`` identifies the image across runs (path, time and frequency), so a
    re-run of the same image is recognised and not stored twice. Times are MJD (UTC),
    angles degrees, rms Jy/beam. Unreadable files have NaN metadata and a reason.
    """

    image_key: str
    path: str
    time_mjd: float
    freq_hz: float
    bandwidth_hz: float
    band: int
    telescope: str
    integration_s: float
    shape: tuple[int, int]
    centre_ra: float
    centre_dec: float
    radius_deg: float
    bmaj_deg: float
    bmin_deg: float
    bpa_deg: float
    rms_median: float
    rms_min: float
    rms_max: float
    accepted: bool
    reject_reason: str | None = None
    n_blind: int = 0
    n_forced: int = 0
    n_monitor: int = 0
    # The calibration applied before association (pipeline/calibrate.py): fluxes were
    # divided by ``flux_scale`` (measured / sky), positions shifted by minus the offset
    # (deg, arcs east and north); counts of the reference sources used.
    flux_scale: float = 1.0
    flux_scale_err: float = float("nan")
    n_flux_calibrators: int = 0
    offset_east_deg: float = 0.0
    offset_north_deg: float = 0.0
    n_position_calibrators: int = 0
    # The fractional scatter of the reference sources' fluxes beyond their errors
    # (scintillation, direction-dependent gains), added to every flux error of the image.
    flux_modulation: float = 0.0


C = TypeVar("C", bound="Columns")


@dataclass
class Columns:
    """Base of the column batches: equal-length numpy arrays, one entry per row."""

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def empty(cls):
        return cls(**{name: np.zeros(0) for name in cls.names()})

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in self.names()}

    def rows(self: C, index: slice | np.ndarray) -> C:
        """The rows at ``index`` (a slice, integer or boolean array), same type."""
        return type(self)(**{name: np.asarray(getattr(self, name))[index]
                             for name in self.names()})


@dataclass
class Measurements(Columns):
    """Fluxes measured in one image: blind detections, forced fits (null detections)
    and monitoring-list positions. ``kind`` holds BLIND, FORCED or MONITOR.
    Peak in Jy/beam, integrated flux in Jy, errors as arcs on the sky (deg)."""

    source_id: np.ndarray
    kind: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ra_err: np.ndarray
    dec_err: np.ndarray
    peak_flux: np.ndarray
    peak_flux_err: np.ndarray
    int_flux: np.ndarray
    int_flux_err: np.ndarray
    snr: np.ndarray
    smaj_asec: np.ndarray
    smin_asec: np.ndarray
    pa_deg: np.ndarray


@dataclass
class SourceStates(Columns):
    """Current state of the sources touched by one image (insert or update).

    Position is the inverse-variance weighted mean of the blind detections; errors as
    arcs on the sky (deg). ``first_time_mjd`` is the first blind detection.
    ``is_monitor`` marks monitoring-list positions (kept apart from blind sources).
    ``misses`` counts the timesteps since the last blind detection in any band: forced
    fits stop in every band after ``[forced] max_misses`` of them, so a source is
    followed for the same time in each band however many bands there are."""

    source_id: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ra_err: np.ndarray
    dec_err: np.ndarray
    first_time_mjd: np.ndarray
    last_time_mjd: np.ndarray
    n_blind: np.ndarray
    n_forced: np.ndarray
    is_monitor: np.ndarray
    misses: np.ndarray


@dataclass
class BandStatistics(Columns):
    """Running sums per source and band, from which eta and V follow in O(1).

    For integrated (``_int``) and peak (``_peak``) flux f with error s and weight
    w = 1/s^2: n, sum w, sum w f, sum w f^2, sum f, sum f^2. ``max_snr`` is the highest
    blind S/N; ``misses`` is the source's count of timesteps without a blind detection
    (the same in every band, see :class:`SourceStates`)."""

    source_id: np.ndarray
    band: np.ndarray
    n: np.ndarray
    sw_int: np.ndarray
    swf_int: np.ndarray
    swf2_int: np.ndarray
    sf_int: np.ndarray
    sf2_int: np.ndarray
    sw_peak: np.ndarray
    swf_peak: np.ndarray
    swf2_peak: np.ndarray
    sf_peak: np.ndarray
    sf2_peak: np.ndarray
    eta_int: np.ndarray
    v_int: np.ndarray
    eta_peak: np.ndarray
    v_peak: np.ndarray
    max_snr: np.ndarray
    misses: np.ndarray
    f_max: np.ndarray
    f_max_err: np.ndarray
    f_min: np.ndarray
    f_min_err: np.ndarray
    vs_int: np.ndarray
    m_int: np.ndarray


@dataclass
class Candidates(Columns):
    """Transient candidates decided in one image.

    ``kind``: 'new' (a claim that the source is new at the run's settings), 'variable',
    or 'new-rejected' (a new detection that failed the rise test or was vetoed, with
    its ``reason``). ``level``: for new sources TraP's two levels against the earlier
    detection limits, 'possible' or 'likely' ('none' when no earlier image covered the
    position); 'eta+v' for variables.

    ``significance`` (dimensionless): for new sources the rise of the detection's peak
    over its precovery flux in combined errors when earlier images were buffered
    (``rise_sigma``), else the peak in units of the best earlier image's rms at the
    position; for variables eta_int over the eta threshold. ``flux``: the detection's
    peak (Jy/beam) or the mean integrated flux (Jy); ``limit`` the best earlier detection
    limit (Jy/beam). ``precovery_flux`` and its error (Jy/beam): weighted mean of the
    forced fits on the ``n_precovery`` earlier images of the band; ``n_bands``: bands
    the source is detected in at that time."""

    source_id: np.ndarray
    kind: np.ndarray
    level: np.ndarray
    band: np.ndarray
    significance: np.ndarray
    flux: np.ndarray
    limit: np.ndarray
    precovery_flux: np.ndarray
    precovery_flux_err: np.ndarray
    rise_sigma: np.ndarray
    n_precovery: np.ndarray
    n_bands: np.ndarray
    reason: np.ndarray


@dataclass
class PrecoveryPoints(Columns):
    """Forced fits of new sources on earlier images (``image_key`` each), made when the
    source appeared: the start of its lightcurve before its first detection. Fluxes as
    in :class:`Measurements` (Jy/beam; a point source's integrated flux is its peak)."""

    source_id: np.ndarray
    image_key: np.ndarray
    time_mjd: np.ndarray
    band: np.ndarray
    freq_hz: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    peak_flux: np.ndarray
    peak_flux_err: np.ndarray
    snr: np.ndarray


@dataclass
class Stamps(Columns):
    """Small cutouts kept with a new source's candidate (as Rubin's alerts carry them),
    so its pictures outlive the images (streamed images are gone after processing):
    ``label`` 'detection' or 'before' (an earlier buffered image of its band); ``pixels``
    float32 bytes of a ``size`` x ``size`` square of the background-subtracted image
    (Jy/beam, row 0 at the bottom) centred on the detection's pixel."""

    source_id: np.ndarray
    image_key: np.ndarray
    time_mjd: np.ndarray
    band: np.ndarray
    label: np.ndarray
    size: np.ndarray
    pixels: np.ndarray


@dataclass
class DepthUpdates(Columns):
    """Best (lowest) and worst (highest) detection limit seen so far per sky cell
    (HEALPix nested index) and band (Jy/beam)."""

    band: np.ndarray
    cell: np.ndarray
    limit: np.ndarray
    worst: np.ndarray


@dataclass
class Forks(Columns):
    """One-to-many splits decided in one image: the new lightcurve ``source_id`` forked
    from the source ``parent_id`` (both source ids)."""

    source_id: np.ndarray
    parent_id: np.ndarray


@dataclass
class ImageResult:
    """Everything the pipeline decided for one image, in one storage transaction."""

    image: ImageRecord
    measurements: Measurements = field(default_factory=Measurements.empty)
    sources: SourceStates = field(default_factory=SourceStates.empty)
    statistics: BandStatistics = field(default_factory=BandStatistics.empty)
    candidates: Candidates = field(default_factory=Candidates.empty)
    depth: DepthUpdates = field(default_factory=DepthUpdates.empty)
    forks: Forks = field(default_factory=Forks.empty)
    precovery: PrecoveryPoints = field(default_factory=PrecoveryPoints.empty)
    stamps: Stamps = field(default_factory=Stamps.empty)


@dataclass
class Flagged(Columns):
    """(source, band) pairs that have had a variability candidate."""

    source_id: np.ndarray
    band: np.ndarray


@dataclass
class MonitorEntry:
    """One monitoring-list position (deg); ``added_mjd`` when it was added."""

    monitor_id: int
    name: str
    ra: float
    dec: float
    source_id: int | None
    added_mjd: float


@dataclass
class StoredState:
    """The stored run: sky model, statistics, depth map, monitors and run-state values."""

    sources: SourceStates
    statistics: BandStatistics
    depth: DepthUpdates
    monitors: list[MonitorEntry] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    # (source, band) pairs already reported variable; None: not read (use the rule).
    flagged: Flagged | None = None


# The running sums behind eta and V, for integrated and peak flux.
STAT_SUMS = ("sw_int", "swf_int", "swf2_int", "sf_int", "sf2_int",
             "sw_peak", "swf_peak", "swf2_peak", "sf_peak", "sf2_peak")


def point_sums(flux, err) -> tuple[np.ndarray, ...]:
    """Each point's terms of the five running sums of one flux kind, in STAT_SUMS order:
    w, w f, w f^2, f, f^2 with the weight w = 1 / err^2 (flux and err in Jy)."""
    f, w = np.asarray(flux, float), 1.0 / np.square(np.asarray(err, float))
    return w, w * f, w * f * f, f, f * f


def eta_v(n, sw, swf, swf2, sf, sf2) -> tuple[np.ndarray, np.ndarray]:
    """TraP's variability statistics from running sums.

    eta = N/(N-1) (<w f^2> - <w f>^2 / <w>): the reduced chi^2 about the weighted mean;
    V = s/|<f>|: the coefficient of variation (sample standard deviation over the mean).
    TraP divides by the mean itself, which makes V negative, and never flagged, for a
    lightcurve whose mean is below zero: a faint transient among its forced fits, whose
    scatter is all its mean is not. NaN below two points.
    """
    n = np.asarray(n, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        factor = n / (n - 1.0)
        eta = factor * (swf2 / n - (swf / n) ** 2 / (sw / n))
        mean = sf / n
        var = factor * (sf2 / n - mean**2)
        v = np.sqrt(np.maximum(var, 0.0)) / np.abs(mean)
    ok = n >= 2
    return np.where(ok, eta, np.nan), np.where(ok, v, np.nan)


def two_epoch(f1, e1, f2, e2) -> tuple[np.ndarray, np.ndarray]:
    """VAST's two-epoch metrics of a pair of flux points (Mooley et al. 2016): the
    t-statistic Vs = (f1 - f2) / sqrt(e1^2 + e2^2) and the modulation index
    m = 2 (f1 - f2) / (f1 + f2). NaN where a point is missing."""
    f1, e1, f2, e2 = (np.asarray(v, dtype=float) for v in (f1, e1, f2, e2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (f1 - f2) / np.hypot(e1, e2), 2.0 * (f1 - f2) / (f1 + f2)


def concat(cls: type[C], parts: list[C]) -> C:
    """Rows of several column batches of one type, in order (dtypes kept)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return cls.empty()
    return cls(**{n: np.concatenate([np.asarray(getattr(p, n)) for p in parts])
                  for n in cls.names()})
