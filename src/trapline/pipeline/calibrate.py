"""Per-image calibration against reference sources: flux scale and position distortion.

A snapshot's flux scale is off by its gain (AARTFAAC: ~15% per image) and its positions
by the ionosphere (a shift of the field plus a gradient across it, both scaling as
freq^-2). As Kuiack et al. (2019) do for every 1 s snapshot, both are measured on
*reference sources*: known sources that are

* bright: their known peak is at least ``min_snr`` times the local rms of the image (the
  known peak, not this image's, so that the selection does not favour upward noise);
* steady so far: at least ``min_points`` points in the band, and a peak-flux V (std/mean)
  of at most ``max_v``. Not eta, nor the variability flag: before calibration starts,
  every bright source's lightcurve carries the gain errors, which makes eta of a steady
  1 Jy source huge while V stays at the gain scatter;
* isolated: no other known source, and no other detection, within ``isolation_beams``;
* detected: the nearest detection within ``match_beams``, itself nearest to them.

The flux scale is an iteratively clipped weighted mean of log(detected peak / known
peak); the position model a clipped weighted least-squares fit of
``apparent - true = offset + G @ x`` (x: east and north offsets of the true position from
the field centre in its tangent plane, deg; G: 2x2, deg per deg). The known sources come
from the sky model (weighted mean peak and position of their earlier measurements) or,
when the user gives one, from a reference catalogue (:func:`load_reference_catalogue`).

Nothing here touches a database or the pipeline's state: :func:`calibrate` measures,
:func:`apply` returns a corrected copy of a catalogue, :func:`calibration_check` says
whether to reject the image.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.stats import chi2

from trapline.errors import ConfigError
from trapline.extract.catalogue import Catalogue
from trapline.geometry import offsets_deg, shift_position, unit_vectors
from trapline.pipeline.bands import BandWindows
from trapline.pipeline.boundary import position_errors, usable_points
from trapline.pipeline.config import CalibrationSection
from trapline.pipeline.skymodel import SkyModel
from trapline.records import Columns, Measurements, eta_v

# A gradient has three parameters per axis; fit it only with twice as many sources.
GRADIENT_MIN_SOURCES = 6
MAX_CLIP_ITERATIONS = 20
# clipped_fit inverts its normal matrices with inv when each weighted design's condition
# number is at most this (the normal matrix's is its square: inv then equals pinv to
# ~1e-13), else with pinv, which also handles a rank-deficient fit.
INV_MAX_CONDITION = 30.0


@dataclass(frozen=True)
class Calibration:
    """One image's calibration against the reference sources.

    Attributes:
        flux_scale: measured / true flux: the image's fluxes (and their errors) are divided
            by it; 1.0 when not measured.
        flux_scale_err: its standard error (NaN when not measured).
        n_flux: reference sources the flux scale was measured on (after clipping).
        offset_east_deg, offset_north_deg: the position model's offset (deg):
            ``apparent - true = offset + G @ (x_east, x_north)``, x the true position's
            tangent-plane offsets from the field centre (deg).
        gradient: G, row-major (g_ee, g_en, g_ne, g_nn), dimensionless (deg per deg).
        n_position: reference sources the position model was fitted to (0: no correction).
        centre_ra, centre_dec: the field centre the model refers to (deg).
        offset_err_deg, gradient_err: standard errors of the offset (deg) and of G (NaN
            where not fitted).
        flux_modulation: the fractional scatter of fluxes beyond their errors
            (scintillation, direction-dependent gains) applied to the image: a real error
            of every flux in it, added to each; the band's recent value
            (:class:`ModulationHistory`), else the image's own.
        own_modulation: the image's own estimate, from the scatter of its reference
            sources' fluxes about the scale (0 when within their errors; NaN when too
            few references with a history were found).
    """

    flux_scale: float
    flux_scale_err: float
    n_flux: int
    offset_east_deg: float
    offset_north_deg: float
    gradient: tuple[float, float, float, float]
    n_position: int
    centre_ra: float
    centre_dec: float
    offset_err_deg: tuple[float, float] = (math.nan, math.nan)
    gradient_err: tuple[float, float, float, float] = (math.nan,) * 4
    flux_modulation: float = 0.0
    own_modulation: float = math.nan

    @classmethod
    def identity(cls, centre_ra: float, centre_dec: float) -> Calibration:
        """No calibration: scale 1, no position correction."""
        return cls(1.0, math.nan, 0, 0.0, 0.0, (0.0, 0.0, 0.0, 0.0), 0, centre_ra, centre_dec)

    def shift_deg(self, east_deg: np.ndarray, north_deg: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
        """The model's shift (apparent - true; east, north in deg) of sources at true
        tangent-plane offsets (deg) from the centre."""
        g = self.gradient
        return (self.offset_east_deg + g[0] * east_deg + g[1] * north_deg,
                self.offset_north_deg + g[2] * east_deg + g[3] * north_deg)


@dataclass(frozen=True)
class ReferenceCatalogue:
    """A user's reference sources: positions (deg), fluxes (Jy; compact sources, so also
    their peak in Jy/beam) and the frequency each flux is at (Hz; NaN: any frequency)."""

    ra_deg: np.ndarray
    dec_deg: np.ndarray
    flux_jy: np.ndarray
    freq_hz: np.ndarray

    def __len__(self) -> int:
        return len(self.ra_deg)

    def at(self, freq_hz: float, tolerance_hz: float) -> ReferenceCatalogue:
        """The sources whose flux is for ``freq_hz`` (within ``tolerance_hz``, Hz), or for
        any frequency."""
        keep = np.isnan(self.freq_hz) | (np.abs(self.freq_hz - freq_hz) <= tolerance_hz)
        return ReferenceCatalogue(self.ra_deg[keep], self.dec_deg[keep], self.flux_jy[keep],
                                  self.freq_hz[keep])


def load_reference_catalogue(path: str | Path) -> ReferenceCatalogue:
    """Read a reference catalogue: CSV with columns ra, dec (deg), flux_jy (Jy) and
    optionally freq_hz (Hz; empty: any frequency). Raises ConfigError naming the file
    (and row) for a missing file or a bad value."""
    path = Path(path)
    rows: list[tuple[float, float, float, float]] = []
    try:
        with path.open(newline="") as fh:
            for i, row in enumerate(csv.DictReader(fh)):
                try:
                    ra, dec, flux = float(row["ra"]), float(row["dec"]), float(row["flux_jy"])
                    freq = float(row.get("freq_hz") or "nan")
                except (KeyError, TypeError, ValueError) as exc:
                    raise ConfigError(f"{path}: row {i + 2} needs numeric ra, dec and flux_jy "
                                      f"columns (and optionally freq_hz)") from exc
                if not (0 <= ra < 360 and -90 <= dec <= 90 and 0 < flux < math.inf):
                    raise ConfigError(f"{path}: row {i + 2} needs 0 <= ra < 360, "
                                      f"-90 <= dec <= 90 and a finite flux_jy > 0")
                rows.append((ra, dec, flux, freq))
    except FileNotFoundError as exc:
        raise ConfigError(f"[calibration] reference_catalogue {path} not found") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"[calibration] reference_catalogue {path} is not a CSV text file"
                          ) from exc
    except OSError as exc:
        raise ConfigError(f"[calibration] reference_catalogue {path} cannot be read "
                          f"({exc.strerror})") from exc
    values = np.array(rows, dtype=float).reshape(-1, 4)
    return ReferenceCatalogue(*(values[:, k].copy() for k in range(4)))


# ---- measuring ---------------------------------------------------------------------------


def calibrate(sky: SkyModel | None, band: int, cat: Catalogue, beam_deg: float, centre_ra: float,
              centre_dec: float, config: CalibrationSection,
              reference: ReferenceCatalogue | None = None) -> Calibration:
    """Calibrate one image's detections ``cat`` (in ``band``) against the sky model as it
    was before this image, or against ``reference`` (a user catalogue, already narrowed to
    the image's frequency with :meth:`ReferenceCatalogue.at`) when given (``sky`` and
    ``band`` are then not used).

    ``beam_deg``: the beam's major-axis FWHM (deg), the unit of ``isolation_beams`` and
    ``match_beams``; ``centre_ra``, ``centre_dec``: the field centre (deg). Returns the
    identity when calibration is disabled or too few reference sources are found.
    """
    if not config.enabled:
        return Calibration.identity(centre_ra, centre_dec)
    if reference is not None:
        known = catalogue_references(reference, beam_deg, config)
    elif sky is not None:
        known = sky_references(sky, band, cat, beam_deg, config)
    else:
        raise ValueError("calibrate needs a sky model or a reference catalogue")
    return fit_calibration(known, cat, beam_deg, centre_ra, centre_dec, config)


def catalogue_references(reference: ReferenceCatalogue, beam_deg: float,
                         config: CalibrationSection) -> References:
    """A user reference catalogue's sources as calibration candidates."""
    zeros = np.zeros(len(reference))
    return References(reference.ra_deg, reference.dec_deg, zeros, zeros, reference.flux_jy,
                      zeros, _isolated(reference.ra_deg, reference.dec_deg,
                                       config.isolation_beams * beam_deg),
                      np.ones(len(reference), dtype=bool))


def calibrated(m: Measurements, cal: Calibration, scale_error: bool = True) -> Measurements:
    """Forced-fit measurements on the flux scale of :func:`apply` (a new record)."""
    s = cal.flux_scale
    if s == 1.0 and cal.flux_modulation == 0.0:
        return m
    rel = relative_error(cal, scale_error)
    out = {}
    for value, error in (("peak_flux", "peak_flux_err"), ("int_flux", "int_flux_err")):
        f = np.asarray(getattr(m, value)) / s
        out[value], out[error] = f, np.hypot(np.asarray(getattr(m, error)) / s, f * rel)
    return replace(m, **out)


def relative_error(cal: Calibration, scale_error: bool = True) -> float:
    """The fractional error calibration adds to every flux of the image: its modulation
    and (with ``scale_error``) the scale's own error, in quadrature."""
    s = cal.flux_scale
    rel = cal.flux_scale_err / s if scale_error and math.isfinite(cal.flux_scale_err) else 0.0
    return math.hypot(rel, cal.flux_modulation)


@dataclass
class References(Columns):
    """Candidate reference sources: positions and their errors (deg), known peak and its
    error (Jy/beam), whether each is isolated from the other known sources, and whether
    it has a history (two points or more, or from a reference catalogue): only those
    measure an image's modulation, as a source seen once may be a variable at its peak
    or an artefact."""

    ra: np.ndarray
    dec: np.ndarray
    ra_err: np.ndarray
    dec_err: np.ndarray
    peak: np.ndarray
    peak_err: np.ndarray
    isolated: np.ndarray
    has_history: np.ndarray


def sky_references(sky: SkyModel, band: int, cat: Catalogue, beam_deg: float,
                    config: CalibrationSection) -> References:
    """The sky model's blind sources within the isolation radius of a detection (the
    farthest a reference can be matched from: so the cost follows the image, not the
    sky model) with enough, steady, history in the band."""
    tree, rows = sky.tree()
    finite = np.isfinite(cat.ra_deg) & np.isfinite(cat.dec_deg)
    if tree is None or not finite.any():
        return References(*(np.zeros(0) for _ in range(6)), np.zeros(0, dtype=bool),
                          np.zeros(0, dtype=bool))
    isolation = _chord(config.isolation_beams * beam_deg)
    # Every (detection, blind source) pair within the isolation radius in one dual-tree
    # pass (the same "within" as query_ball_point: squared distance <= squared radius).
    det_tree = cKDTree(unit_vectors(cat.ra_deg[finite], cat.dec_deg[finite]))
    pairs = det_tree.sparse_distance_matrix(tree, isolation, output_type="ndarray")
    near = np.unique(pairs["j"])
    # Isolation among all blind sources, steady or not.
    isolated = np.ones(len(near), dtype=bool)
    if len(rows) > 1:
        dist, _ = tree.query(tree.data[near], k=2, distance_upper_bound=1.01 * isolation)
        isolated = dist[:, 1] > isolation
    rows = rows[near]
    b = sky.band(band)
    n, sw, swf, swf2, sf, sf2 = (b.full(name)[rows] for name in (
        "n", "sw_peak", "swf_peak", "swf2_peak", "sf_peak", "sf2_peak"))
    _, v = eta_v(n, sw, swf, swf2, sf, sf2)
    with np.errstate(invalid="ignore", divide="ignore"):
        steady = (n >= config.min_points) & (sw > 0) & (swf > 0)
        if config.max_v > 0:
            steady &= ~(v > config.max_v)  # NaN (a single point) is no evidence of variability
    sel = rows[steady]
    ra_err, dec_err = sky.errors(sel)
    s = sky.sources
    return References(s.ra[sel], s.dec[sel], ra_err, dec_err, swf[steady] / sw[steady],
                  1.0 / np.sqrt(sw[steady]), isolated[steady], n[steady] >= 2)


def _isolated(ra: np.ndarray, dec: np.ndarray, radius_deg: float) -> np.ndarray:
    """Whether each position has no other within ``radius_deg``."""
    if len(ra) < 2:
        return np.ones(len(ra), dtype=bool)
    dist, _ = cKDTree(unit_vectors(ra, dec)).query(unit_vectors(ra, dec), k=2)
    return dist[:, 1] > _chord(radius_deg)


def _chord(radius_deg: float) -> float:
    return 2.0 * math.sin(math.radians(min(radius_deg, 180.0)) / 2.0)


@dataclass(frozen=True)
class _Detections:
    """A catalogue's detections with finite positions, prepared once for both matching
    passes: their rows, unit vectors and KD-tree, their tangent-plane offsets (deg) from
    the field centre, and whether each may be a reference (no other detection within the
    isolation radius, a usable positive peak)."""

    rows: np.ndarray
    xyz: np.ndarray
    tree: cKDTree
    east: np.ndarray
    north: np.ndarray
    eligible: np.ndarray


def _detections(cat: Catalogue, centre_ra: float, centre_dec: float, isolation_deg: float
                ) -> _Detections | None:
    """The finite detections of ``cat`` (None when there are none)."""
    rows = np.flatnonzero(np.isfinite(cat.ra_deg) & np.isfinite(cat.dec_deg))
    if not len(rows):
        return None
    ra, dec = cat.ra_deg[rows], cat.dec_deg[rows]
    xyz = unit_vectors(ra, dec)
    tree = cKDTree(xyz)
    east, north = offsets_deg(centre_ra, centre_dec, ra, dec)
    peak = cat.peak_jy[rows]
    with np.errstate(invalid="ignore"):
        eligible = usable_points(peak, cat.peak_err_jy[rows]) & (peak > 0)
    if len(rows) > 1:
        # The bound (above the radius, so the distances compared are exact) only prunes.
        chord = _chord(isolation_deg)
        dist2, _ = tree.query(xyz, k=2, distance_upper_bound=1.01 * chord)
        eligible &= dist2[:, 1] > chord
    return _Detections(rows, xyz, tree, east, north, eligible)


def _match(known_peak: np.ndarray, known_xyz: np.ndarray, dets: _Detections, rms: np.ndarray,
           radius_deg: float, min_snr: float) -> tuple[np.ndarray, np.ndarray]:
    """(known index, detection index into ``dets``) of the reference sources: the
    isolated known sources (peaks ``known_peak``, expected at ``known_xyz``) whose
    nearest detection within ``radius_deg`` has them as its nearest known source and is
    eligible; their known peak at least ``min_snr`` times the detection's local rms
    ``rms`` (Jy/beam, one per detection of ``dets``)."""
    dist, nearest = dets.tree.query(known_xyz, distance_upper_bound=_chord(radius_deg))
    k = np.flatnonzero(np.isfinite(dist))
    d = nearest[k]
    # The cheap tests first (the order of the tests does not change the result), so that
    # the back query (the detection's nearest known source) runs on fewer points.
    with np.errstate(invalid="ignore"):
        keep = dets.eligible[d] & (known_peak[k] >= min_snr * rms[d])
    k, d = k[keep], d[keep]
    if len(k):
        _, back = cKDTree(known_xyz).query(dets.xyz[d])
        mutual = back == k
        k, d = k[mutual], d[mutual]
    return k, d


@dataclass(frozen=True)
class _Matches:
    """The reference sources of an image: known index, catalogue row, and the
    tangent-plane offsets (deg) from the field centre of their known (true) and detected
    (apparent) positions."""

    known: np.ndarray
    det: np.ndarray
    true_e: np.ndarray
    true_n: np.ndarray
    app_e: np.ndarray
    app_n: np.ndarray


def _references(known: References, cat: Catalogue, beam_deg: float, centre_ra: float,
                centre_dec: float, config: CalibrationSection) -> _Matches:
    """Match in two passes: within half the isolation radius (unambiguous, as the
    sources are isolated) for the median shift of the field, then within ``match_beams``
    of the known positions moved by it, so that an ionospheric shift of a beam or more
    does not lose the references."""
    isolation = config.isolation_beams * beam_deg
    cand = np.flatnonzero(known.isolated)
    dets = _detections(cat, centre_ra, centre_dec, isolation) if len(cand) else None
    if dets is None:
        empty, none = np.zeros(0, dtype=np.int64), np.zeros(0)
        return _Matches(empty, empty, none, none, none, none)
    ra, dec, peak = known.ra[cand], known.dec[cand], known.peak[cand]
    rms = cat.rms_jy[dets.rows]
    true_e, true_n = offsets_deg(centre_ra, centre_dec, ra, dec)
    k, d = _match(peak, unit_vectors(ra, dec), dets, rms, isolation / 2.0, config.min_snr)
    if len(k):
        ra, dec = shift_position(centre_ra, centre_dec,
                                 true_e + np.median(dets.east[d] - true_e[k]),
                                 true_n + np.median(dets.north[d] - true_n[k]))
    k, d = _match(peak, unit_vectors(ra, dec), dets, rms, config.match_beams * beam_deg,
                  config.min_snr)
    return _Matches(cand[k], dets.rows[d], true_e[k], true_n[k], dets.east[d], dets.north[d])


def fit_calibration(known: References, cat: Catalogue, beam_deg: float, centre_ra: float,
         centre_dec: float, config: CalibrationSection) -> Calibration:
    """Flux scale and position model from the matched reference sources."""
    m = _references(known, cat, beam_deg, centre_ra, centre_dec, config)
    k, det = m.known, m.det
    cal = Calibration.identity(centre_ra, centre_dec)
    scale, scale_err, n_flux = cal.flux_scale, cal.flux_scale_err, 0
    modulation = math.nan
    if len(k) >= config.min_sources_flux:
        log_ratio = np.log(cat.peak_jy[det] / known.peak[k])
        err = np.hypot(cat.peak_err_jy[det] / cat.peak_jy[det], known.peak_err[k] / known.peak[k])
        params, cov, keep = clipped_fit(np.ones((len(k), 1)), log_ratio[:, None], err[:, None],
                                        config.clip_sigma)
        if keep.sum() >= config.min_sources_flux:
            log_scale, log_err = float(params[0, 0]), float(np.sqrt(cov[0, 0, 0]))
            known_long = np.flatnonzero(keep & known.has_history[k])
            if len(known_long) >= config.min_sources_flux:
                modulation, kept = excess_scatter(log_ratio[known_long], err[known_long],
                                                  config.modulation_p, config.clip_sigma)
                if modulation > 0 and kept.sum() >= config.min_sources_flux:
                    # The scatter is per source: weigh each by its whole error, so that
                    # the brightest do not set the scale alone.
                    keep = np.zeros(len(k), dtype=bool)
                    keep[known_long[kept]] = True
                    w = 1.0 / (np.square(err[keep]) + modulation**2)
                    log_scale = float(np.sum(w * log_ratio[keep]) / np.sum(w))
                    log_err = float(1.0 / np.sqrt(np.sum(w)))
            scale = math.exp(log_scale)
            scale_err = scale * log_err
            n_flux = int(keep.sum())
    position = {}
    if len(k) >= config.min_sources_position:
        y = np.stack([m.app_e - m.true_e, m.app_n - m.true_n], axis=1)
        sigma = np.stack([np.hypot(position_errors(cat.ra_err_deg[det]), known.ra_err[k]),
                          np.hypot(position_errors(cat.dec_err_deg[det]), known.dec_err[k])],
                         axis=1)
        design = np.stack([np.ones(len(k)), m.true_e, m.true_n], axis=1)
        gradient_fit = (config.fit_gradient and len(k) >= GRADIENT_MIN_SOURCES
                        and np.linalg.matrix_rank(design) == 3)
        if not gradient_fit:
            design = design[:, :1]
        params, cov, keep = clipped_fit(design, y, sigma, config.clip_sigma)
        if keep.sum() >= config.min_sources_position:
            err = np.sqrt(np.diagonal(cov, axis1=0, axis2=1))  # (d, p)
            position = {"offset_east_deg": float(params[0, 0]),
                        "offset_north_deg": float(params[0, 1]),
                        "offset_err_deg": (float(err[0, 0]), float(err[1, 0])),
                        "n_position": int(keep.sum())}
            if gradient_fit:
                position["gradient"] = tuple(float(v) for v in params[1:].T.ravel())
                position["gradient_err"] = tuple(float(v) for v in err[:, 1:].ravel())
    return replace(cal, flux_scale=scale, flux_scale_err=scale_err, n_flux=n_flux,
                   flux_modulation=0.0 if math.isnan(modulation) else modulation,
                   own_modulation=modulation, **position)


class ModulationHistory:
    """The flux modulation to apply per band: the root mean square of the own estimates
    of the image and of the band's last accepted images (``images`` in all). One image's
    twenty-odd references give its modulation to about a quarter of itself; the
    scintillation of a field changes over minutes. An image without an estimate of its
    own (too few references with a history) gets the band's."""

    def __init__(self, images: int):
        self.images = images
        self._history = BandWindows(images)  # squared own estimates

    def pooled(self, band: int, cal: Calibration) -> Calibration:
        """``cal`` with the modulation to apply to its image (in ``band``)."""
        values = self._history.values(band)
        if math.isfinite(cal.own_modulation):
            values = values[len(values) + 1 - self.images:] + [cal.own_modulation**2]
        if not values:
            return cal
        return replace(cal, flux_modulation=math.sqrt(sum(values) / len(values)))

    def add(self, band: int, cal: Calibration) -> None:
        """Count an accepted image's own estimate (a rejected image's is not counted)."""
        if math.isfinite(cal.own_modulation):
            self._history.add(band, cal.own_modulation**2)

    def dump(self) -> dict[str, list[float]]:
        """The recent estimates (squared) per band, to store with the run."""
        return self._history.dump()

    def load(self, stored: dict[str, list[float]]) -> None:
        self._history.load(stored)


def excess_scatter(y: np.ndarray, sigma: np.ndarray, p_value: float, clip_sigma: float
                   ) -> tuple[float, np.ndarray]:
    """The scatter ``tau`` of ``y`` beyond its errors ``sigma``: the Paule-Mandel
    random-effect estimate (the ``tau`` at which the chi^2 of ``y`` about its weighted
    mean, weights 1 / (sigma^2 + tau^2), equals its degrees of freedom), with points
    more than ``clip_sigma`` sqrt(sigma^2 + tau^2) off the mean left out and ``tau``
    refitted until the set is stable (a variable not yet known among the reference
    sources does not set it). 0 unless the chi^2 at tau = 0 has a p-value below
    ``p_value``. Returns ``tau`` and the mask of the points kept."""
    var = np.square(sigma)
    keep = np.ones(len(y), dtype=bool)
    tau2 = 0.0
    for _ in range(MAX_CLIP_ITERATIONS):
        if keep.sum() < 3:
            return 0.0, keep
        tau2 = _paule_mandel(y[keep], var[keep], p_value)
        w = 1.0 / (var + tau2)
        mean = np.sum(w[keep] * y[keep]) / np.sum(w[keep])
        new_keep = np.abs(y - mean) <= clip_sigma * np.sqrt(var + tau2)
        if np.array_equal(new_keep, keep):
            break
        keep = new_keep
    return math.sqrt(tau2), keep


def _paule_mandel(y: np.ndarray, var: np.ndarray, p_value: float) -> float:
    """tau^2 of :func:`excess_scatter` for one set of points."""
    def chi2_at(tau2: float) -> float:
        w = 1.0 / (var + tau2)
        mean = np.sum(w * y) / np.sum(w)
        return float(np.sum(w * np.square(y - mean)))

    dof = len(y) - 1
    if p_value <= 0 or chi2.sf(chi2_at(0.0), dof) >= p_value:
        return 0.0
    # chi2_at falls with tau2, to at most dof at tau2 = the sample variance (every
    # weight is then below 1 / tau2): bisect between.
    low, high = 0.0, float(np.var(y, ddof=1))
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if chi2_at(mid) > dof else (low, mid)
        if high - low <= 1e-6 * high:
            break
    return 0.5 * (low + high)


def clipped_fit(design: np.ndarray, y: np.ndarray, sigma: np.ndarray, clip_sigma: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Iteratively sigma-clipped weighted linear least squares.

    ``design``: (n, p), the model of every column of ``y`` (n, d), whose 1-sigma errors
    are ``sigma`` (n, d). A point (row) is left out when the rms over its columns of
    (residual / sigma) exceeds ``clip_sigma`` times the robust (median-based) scale of
    those values, that scale never below 1 (the errors are not trusted to be too large,
    only too small). It starts from the weighted median of each column, so that a wild
    point cannot drag the first fit; points may come back as the fit settles.

    Returns (params (p, d), covariance (p, p, d) scaled up by the reduced chi^2 when it
    is above 1, mask of the points kept).
    """
    n, p = design.shape
    d = y.shape[1]
    w = 1.0 / np.square(sigma)
    sqrt_w = np.sqrt(w)
    typical = _typical_scale(d)
    resid = y - np.array([_weighted_median(y[:, j], w[:, j]) for j in range(d)])
    keep = np.ones(n, dtype=bool)
    params = np.zeros((p, d))
    cov = np.full((p, p, d), np.nan)
    normal, chi2_factor = np.empty((d, p, p)), np.empty((d, 1, 1))
    fitted = False
    for _ in range(MAX_CLIP_ITERATIONS):
        z = np.sqrt(np.mean(np.square(resid / sigma), axis=1))
        scale = max(1.0, float(np.median(z[keep])) / typical)
        new_keep = z <= clip_sigma * scale
        if fitted and np.array_equal(new_keep, keep):
            break
        if new_keep.sum() <= p:  # too few left for a fit with an error: keep the last one
            break
        keep = new_keep
        dof = int(keep.sum()) - p
        x, yk, swk = design[keep], y[keep], sqrt_w[keep]
        well_conditioned = True
        for j in range(d):
            a = x * swk[:, j][:, None]
            b = yk[:, j] * swk[:, j]
            params[:, j], _, _, singular = np.linalg.lstsq(a, b, rcond=None)
            well_conditioned &= singular[0] <= INV_MAX_CONDITION * singular[-1]
            r = b - a @ params[:, j]
            normal[j] = a.T @ a
            chi2_factor[j] = max(1.0, float(r @ r) / dof)
        # One batched inv of the small (1x1 or 3x3) normal matrices costs a fraction of a
        # pinv (an SVD) per column, and gives the same when they are well conditioned.
        inverse = np.linalg.inv(normal) if well_conditioned else np.linalg.pinv(normal)
        cov = np.moveaxis(inverse * chi2_factor, 0, -1)
        fitted = True
        resid = y - design @ params
    if not fitted:
        keep[:] = False
    return params, cov, keep


@lru_cache(maxsize=8)
def _typical_scale(d: int) -> float:
    """The median of sqrt(chi^2_d / d): what a robust scale of 1 looks like (cached: a
    scipy.stats call costs more than a whole small fit)."""
    return math.sqrt(chi2.ppf(0.5, d) / d)


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, 0.5 * cum[-1])])


# ---- applying and checking ---------------------------------------------------------------


def apply(cat: Catalogue, cal: Calibration, scale_error: bool = True) -> Catalogue:
    """A new, calibrated catalogue (the input is never changed).

    Fluxes (peak, integrated) and the local rms are divided by ``flux_scale``, and so are
    their errors; the image's ``flux_modulation`` and, with ``scale_error``, the scale's
    own relative error are added to them in quadrature (real errors of every flux in the
    image, so a lightcurve's eta sees them). S/N is unchanged. Positions (RA/Dec) are corrected by
    the position model: the true tangent-plane offsets x solve
    ``apparent = x + offset + G @ x``. Position errors, pixel positions and shapes are
    kept as measured.
    """
    out = Catalogue(**{name: np.array(getattr(cat, name), dtype=float, copy=True)
                       for name in Catalogue.columns()})
    s = cal.flux_scale
    rel = relative_error(cal, scale_error)
    for value, error in (("peak_jy", "peak_err_jy"), ("flux_jy", "flux_err_jy")):
        f = getattr(out, value) / s
        setattr(out, error, np.hypot(getattr(out, error) / s, f * rel))
        setattr(out, value, f)
    out.rms_jy = out.rms_jy / s
    if cal.n_position > 0 and len(out):
        app_e, app_n = offsets_deg(cal.centre_ra, cal.centre_dec, out.ra_deg, out.dec_deg)
        g = np.array(cal.gradient).reshape(2, 2)
        rhs = np.stack([app_e - cal.offset_east_deg, app_n - cal.offset_north_deg])
        true_e, true_n = np.linalg.solve(np.eye(2) + g, rhs)
        out.ra_deg, out.dec_deg = shift_position(cal.centre_ra, cal.centre_dec, true_e, true_n)
    return out


def apparent_positions(cal: Calibration, ra: np.ndarray, dec: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Where sources at true positions ``ra``, ``dec`` (deg) appear in the image:
    ``x + offset + G @ x`` (the inverse of :func:`apply`'s correction), so that forced
    fits are made where the image has them."""
    if cal.n_position == 0 or not len(ra):
        return ra, dec
    true_e, true_n = offsets_deg(cal.centre_ra, cal.centre_dec, ra, dec)
    shift_e, shift_n = cal.shift_deg(true_e, true_n)
    return shift_position(cal.centre_ra, cal.centre_dec, true_e + shift_e, true_n + shift_n)


def calibration_check(cal: Calibration, config: CalibrationSection) -> str | None:
    """One-line reason to reject the image, or None: a measured flux scale off by more
    than a factor exp(``max_log_scale``), or (with ``reject_min_sources``) too few
    reference sources for the flux scale."""
    if cal.n_flux and abs(math.log(cal.flux_scale)) > config.max_log_scale:
        return (f"flux scale {cal.flux_scale:.3g} (from {cal.n_flux} reference sources) is "
                f"off by more than a factor {math.exp(config.max_log_scale):.3g} "
                f"([calibration] max_log_scale {config.max_log_scale:g})")
    if cal.n_flux < config.reject_min_sources:
        return (f"only {cal.n_flux} reference sources for the flux scale "
                f"([calibration] reject_min_sources {config.reject_min_sources})")
    return None
