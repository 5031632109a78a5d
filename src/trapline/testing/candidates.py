"""Score a stored run's candidates, calibration and positions against a simulated
series' truth (:func:`trapline.simulate.write_series`): the figures of
``tests/test_candidates_truth.py`` and ``bench/candidates_bench.py``.

Matching is on the sky, within ``radius_beams`` beam major-axis FWHMs. Definitions:

* a **false new source** is a 'new' candidate whose blind detection in its image lies
  on a sidelobe artefact of that image (sidelobes.csv), on a steady source, or on no
  transient, fading or variable source;
* an **eligible transient** turns on after the first epoch with an apparent peak of at
  least ``transient_snr`` rms in some band of its first 'on' epoch; it is **caught**
  when its pipeline source has a 'new' candidate at that time;
* a **bright steady source** has a sky peak of at least ``steady_snr`` rms; it is
  **flagged** when it has a 'variable' candidate;
* the **flux-scale residual** of an image is its stored ``flux_scale`` over the
  injected gain (images.csv), over the band's mean of that ratio, minus 1 (the sky
  model's scale is tied to its first images, not to the truth); images without flux
  calibrators (the first of each band) are left out, unless no image has any (the
  calibration was off);
* a **position pull** is the offset (arc, east or north) of a bright steady source's
  stored position from its catalogue position over the stored error; ``pull_std`` is
  their spread, ``frame_pull_std`` that after a fit of an offset and a linear gradient
  of the offsets across the field (the frame of the sky model, which is that of its
  first image's ionosphere when calibrating against the sky model);
* a **lightcurve pull** is a point of a bright steady source's lightcurve (every kind,
  per band) minus the lightcurve's weighted mean, over the point's error (peak fluxes);
  ``lightcurve_pull_std`` is their spread (1 when the stored errors are the real
  scatter);
* the **modulation** of an image is its stored ``flux_modulation``;
* **AUC** is the area under the ROC curve of eta_int (or v_int), per (source, band) row
  of the variability table, separating variables (or transients) from steady sources.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from trapline.api import Run
from trapline.geometry import unit_vectors
from trapline.simulate import SeriesFiles, SimulationConfig

TRUE_NEW = ("transient", "fading", "variable")


@dataclass(frozen=True)
class Series:
    """A simulated series on disk with its truth tables read."""

    config: SimulationConfig
    files: SeriesFiles
    truth: pd.DataFrame  # truth.csv
    images: pd.DataFrame  # images.csv
    sidelobes: pd.DataFrame  # sidelobes.csv
    sources: pd.DataFrame  # sources.csv

    @classmethod
    def read(cls, config: SimulationConfig, files: SeriesFiles) -> Series:
        return cls(config, files, pd.read_csv(files.truth), pd.read_csv(files.image_table),
                   pd.read_csv(files.sidelobes), pd.read_csv(files.sources))

    @property
    def beam_deg(self) -> float:
        """Beam major-axis FWHM (deg)."""
        return self.config.beam.bmaj_deg


@dataclass
class Score:
    """What a run got right and wrong against the truth (see the module docstring)."""

    n_images: int
    false_new: int
    n_new: int
    transients_eligible: int
    transients_caught: int
    steady_bright: int
    steady_flagged: int
    flux_scale_rms: float  # fraction
    flux_scale_images: int
    gain_rms: float  # injected, fraction
    pull_std: float  # east and north pulls together
    frame_pull_std: float  # the same, a fitted offset and gradient removed
    n_pulls: int
    lightcurve_pull_std: float  # bright steady sources' points about their mean
    modulation_median: float  # the images' flux_modulation, median over calibrated ones
    auc: dict[str, float] = field(default_factory=dict)  # 'eta variable', 'V transient', ...
    missed: list[int] = field(default_factory=list)  # true ids of uncaught transients
    false_ids: list[int] = field(default_factory=list)  # pipeline ids of false new sources

    @property
    def false_new_per_1000(self) -> float:
        return 1000.0 * self.false_new / self.n_images

    @property
    def caught_fraction(self) -> float:
        return self.transients_caught / self.transients_eligible if self.transients_eligible \
            else float("nan")

    @property
    def steady_flagged_fraction(self) -> float:
        return self.steady_flagged / self.steady_bright if self.steady_bright else float("nan")


def write_catalogue(series: Series, path: str | os.PathLike, min_snr: float = 20.0
                    ) -> str | os.PathLike:
    """Write a reference catalogue (``ra,dec,flux_jy``, for ``[calibration]
    reference_catalogue``) of the series' steady sources whose sky peak is at least
    ``min_snr`` times the noise: their true positions and fluxes. Returns ``path``."""
    src = series.sources
    bright = src[(src.population == "steady")
                 & (src.base_flux_jy >= min_snr * series.config.rms_jy)]
    bright[["ra", "dec", "base_flux_jy"]].rename(columns={"base_flux_jy": "flux_jy"}).to_csv(
        path, index=False)
    return path


def chord(radius_deg: float) -> float:
    """Chord length on the unit sphere of an angle (deg), for cKDTree radius queries."""
    return 2.0 * np.sin(np.radians(radius_deg) / 2.0)


def nearest(ra: np.ndarray, dec: np.ndarray, to_ra: np.ndarray, to_dec: np.ndarray,
            radius_deg: float) -> np.ndarray:
    """Per position (ra, dec) (deg), the index of the nearest of (to_ra, to_dec) within
    ``radius_deg``, or -1."""
    if len(to_ra) == 0 or len(ra) == 0:
        return np.full(len(ra), -1)
    dist, idx = cKDTree(unit_vectors(np.asarray(to_ra), np.asarray(to_dec))).query(
        unit_vectors(np.asarray(ra), np.asarray(dec)))
    return np.where(dist <= chord(radius_deg), idx, -1)


def pipeline_ids(run_sources: pd.DataFrame, series: Series, radius_deg: float) -> pd.Series:
    """Per true source (index: true source_id), the pipeline source nearest its catalogue
    position within ``radius_deg`` (-1: none)."""
    blind = run_sources[~run_sources.is_monitor.astype(bool)]
    near = nearest(series.sources.ra.to_numpy(), series.sources.dec.to_numpy(),
                   blind.ra.to_numpy(), blind.dec.to_numpy(), radius_deg)
    ids = np.where(near >= 0, blind.source_id.to_numpy()[np.maximum(near, 0)], -1)
    return pd.Series(ids, index=series.sources.source_id.to_numpy())


def auc(positive: np.ndarray, negative: np.ndarray) -> float:
    """Area under the ROC curve: the chance a positive scores above a negative (ties
    count half); NaN values are left out, NaN when a class is empty."""
    pos = np.asarray(positive, float)
    neg = np.asarray(negative, float)
    pos, neg = pos[np.isfinite(pos)], neg[np.isfinite(neg)]
    if not len(pos) or not len(neg):
        return float("nan")
    return float((pos[:, None] > neg[None, :]).mean()
                  + 0.5 * (pos[:, None] == neg[None, :]).mean())


def score(run: Run, series: Series, radius_beams: float = 1.0, transient_snr: float = 10.0,
          steady_snr: float = 20.0) -> Score:
    """Score a stored run of ``series`` (see the module docstring for the definitions)."""
    radius = radius_beams * series.beam_deg
    images = run.images()
    images["name"] = images.path.map(os.path.basename)
    accepted = images[images.accepted.astype(bool)]
    found = run.sources()
    candidates = run.candidates()
    measurements = run.measurements()
    truth, src = series.truth, series.sources.set_index("source_id")
    ids = pipeline_ids(found, series, radius)

    # -- false new sources: each 'new' candidate's blind detection in its image.
    new = candidates[candidates.kind == "new"]
    blind = measurements[measurements.kind == "blind"]
    at = new.merge(blind[["source_id", "image_id", "ra", "dec"]], on=["source_id", "image_id"],
                   how="left")
    at["name"] = at.image_id.map(images.set_index("image_id").name)
    real = nearest(at.ra.to_numpy(), at.dec.to_numpy(), src.ra.to_numpy(), src.dec.to_numpy(),
                   radius)
    population = np.where(real >= 0, src.population.to_numpy()[np.maximum(real, 0)], "")
    on_lobe = np.zeros(len(at), dtype=bool)
    for name, rows in at.groupby("name").groups.items():
        lobes = series.sidelobes[series.sidelobes.image == name]
        k = at.index.get_indexer(rows)
        on_lobe[k] = nearest(at.ra.to_numpy()[k], at.dec.to_numpy()[k], lobes.ra.to_numpy(),
                             lobes.dec.to_numpy(), radius) >= 0
    false = on_lobe | ~np.isin(population, TRUE_NEW) | at.ra.isna().to_numpy()

    # -- transients flagged new in their first image.
    first_on = truth[(truth.population == "transient") & (truth.apparent_peak_jy > 0)]
    first_on = first_on[first_on.epoch == first_on.groupby("source_id").epoch.transform("min")]
    snr = (first_on.apparent_peak_jy / first_on.rms_jy).groupby(first_on.source_id).max()
    start = first_on.groupby("source_id").time_mjd.first()
    eligible = [s for s in snr.index if snr[s] >= transient_snr and src.start_epoch[s] > 0]
    new_times = new.groupby("source_id").time_mjd.apply(list)
    missed = [s for s in eligible if not any(
        abs(t - start[s]) < 1e-8 for t in new_times.get(ids[s], []))]

    # -- bright steady sources flagged variable.
    sky_snr = (truth.peak_jy / truth.rms_jy).groupby(truth.source_id).min()
    bright = [s for s in src.index[src.population == "steady"] if sky_snr[s] >= steady_snr]
    variable_ids = set(candidates[candidates.kind == "variable"].source_id)
    flagged = [s for s in bright if ids[s] >= 0 and ids[s] in variable_ids]

    # -- lightcurve pulls of bright steady sources: points about the weighted mean.
    lc = measurements[measurements.source_id.isin([ids[s] for s in bright if ids[s] >= 0])]
    lc = lc[np.isfinite(lc.peak_flux) & (lc.peak_flux_err > 0)]
    w = 1.0 / np.square(lc.peak_flux_err)
    key = [lc.source_id, lc.band]
    mean = (w * lc.peak_flux).groupby(key).transform("sum") / w.groupby(key).transform("sum")
    lc_pulls = ((lc.peak_flux - mean) / lc.peak_flux_err).to_numpy()

    # -- flux scale left after calibration, per band.
    # Without calibration (none has calibrators) every image keeps its gain.
    calibrated = accepted.n_flux_calibrators > 0
    cal = accepted[calibrated if calibrated.any() else accepted.accepted.astype(bool)].merge(
        series.images[["image", "gain"]], left_on="name", right_on="image")
    ratio = cal.flux_scale / cal.gain
    residual = ratio / ratio.groupby(cal.band).transform("mean") - 1.0
    gains = series.images.gain

    # -- positions of bright steady sources (catalogue positions are the truth).
    matched = [s for s in bright if ids[s] >= 0]
    pos = found.set_index("source_id").loc[ids[matched].to_numpy()]
    true = src.loc[matched]
    east = ((pos.ra.to_numpy() - true.ra.to_numpy() + 180.0) % 360.0 - 180.0) \
        * np.cos(np.radians(true.dec.to_numpy())) / pos.ra_err.to_numpy()
    north = (pos.dec.to_numpy() - true.dec.to_numpy()) / pos.dec_err.to_numpy()
    pulls = np.concatenate([east, north])
    frame_pulls = np.concatenate([frame_residual(east, true, series), frame_residual(
        north, true, series)])

    # -- separation of variables and transients from steady sources, per band.
    var = run.variability()
    population_of = {pid: src.population[s] for s, pid in ids.items() if pid >= 0}
    var["population"] = var.source_id.map(population_of)
    aucs = {}
    for stat, column in (("eta", "eta_int"), ("V", "v_int")):
        steady = var[var.population == "steady"][column].to_numpy()
        for kind in ("variable", "transient"):
            aucs[f"{stat} {kind}"] = auc(var[var.population == kind][column].to_numpy(), steady)

    return Score(
        n_images=len(accepted), false_new=int(false.sum()), n_new=len(new),
        transients_eligible=len(eligible), transients_caught=len(eligible) - len(missed),
        steady_bright=len(bright), steady_flagged=len(flagged),
        flux_scale_rms=float(np.sqrt(np.mean(np.square(residual)))) if len(cal) else
        float("nan"),
        flux_scale_images=len(cal), gain_rms=float(np.std(gains / gains.mean())),
        pull_std=float(np.std(pulls)) if len(pulls) else float("nan"),
        frame_pull_std=float(np.std(frame_pulls)) if len(pulls) else float("nan"),
        n_pulls=len(pulls),
        lightcurve_pull_std=float(np.std(lc_pulls)) if len(lc_pulls) else float("nan"),
        modulation_median=float(np.median(cal.flux_modulation.fillna(0.0))) if len(cal)
        else float("nan"),
        auc=aucs, missed=missed, false_ids=at.source_id[false].astype(int).tolist())


def frame_residual(pull: np.ndarray, true: pd.DataFrame, series: Series) -> np.ndarray:
    """Pulls less their least-squares fit by ``a + b x + c y`` over the sources' pixel
    positions (an offset and gradient of the frame); unchanged below 6 sources."""
    if len(pull) < 6:
        return pull
    design = np.c_[np.ones(len(pull)), true.x.to_numpy(), true.y.to_numpy()]
    coef, *_ = np.linalg.lstsq(design, pull, rcond=None)
    return pull - design @ coef
