"""Notebook access to a stored run: ``run = trapline.api.open(url)``.

Every method returns a pandas DataFrame (see :mod:`trapline.storage.export` for the
columns): times ISO 8601 UTC, angles degrees, fluxes Jy/beam (peak) and Jy (int).
Reading never changes the database.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pandas as pd

from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.variability import over_thresholds
from trapline.storage import export, lightcurves, runinfo
from trapline.storage.engine import describe, make_engine, normalise_url

__all__ = ["Run", "open"]


class Run:
    """A stored pipeline run (SQLite file or PostgreSQL database), read only."""

    def __init__(self, url: str):
        self.url = normalise_url(url)
        self.engine = make_engine(self.url, must_exist=True)

    def __repr__(self) -> str:
        return f"Run({describe(self.url)!r})"

    def __enter__(self) -> Run:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Release the connections."""
        self.engine.dispose()

    def _read(self, fn, *args) -> pd.DataFrame:
        with export.storage_errors(self.url), self.engine.connect() as conn:
            return fn(conn, *args)

    def images(self) -> pd.DataFrame:
        """One row per image: time, frequency, band, rms, beam, quality control."""
        return self._read(export.read, "images")

    def sources(self) -> pd.DataFrame:
        """One row per source: mean position and errors, first detection, counts."""
        return self._read(export.read, "sources")

    def measurements(self, source_id: int | None = None) -> pd.DataFrame:
        """All flux measurements, or those of one source sorted by time."""
        return self._read(export.measurements, source_id)

    def variability(self) -> pd.DataFrame:
        """Variability per source and band: eta and V (integrated and peak), max S/N."""
        return self._read(export.read, "variability")

    def candidates(self) -> pd.DataFrame:
        """Transient candidates: kind 'new' or 'variable', their level and significance
        (see :data:`trapline.storage.export.SIGNIFICANCE`)."""
        return self._read(export.read, "candidates")

    def config(self) -> PipelineConfig:
        """The configuration the run was made with (the defaults when none is stored)."""
        return self._read(runinfo.run_config)[0]

    def thresholds(self) -> dict[str, Any]:
        """The run's variability thresholds: ``eta_threshold``, ``v_threshold``,
        ``min_points``, ``false_alarm_p`` and ``from_run`` (False: defaults, no
        configuration stored)."""
        return self._read(runinfo.thresholds)

    def variables(self, eta: float | None = None, v: float | None = None) -> pd.DataFrame:
        """Variability rows above both thresholds with at least the run's minimum
        number of points, as the pipeline flags variables; ``eta`` and ``v`` default to
        the run's thresholds."""
        cfg = self.config().variability
        cfg = replace(cfg, eta_threshold=cfg.eta_threshold if eta is None else eta,
                      v_threshold=cfg.v_threshold if v is None else v)
        frame = self.variability()
        keep = over_thresholds(frame.n, frame.eta_int, frame.v_int, cfg)
        return frame[keep].reset_index(drop=True)

    def bins(self) -> pd.DataFrame:
        """The compacted lightcurve bins (after ``trapline compact``): one row per
        source, band and time bin."""
        return self._read(export.read, "bins")

    def lightcurve(self, source_id: int, band: int | None = None,
                   resolution: float | None = None) -> pd.DataFrame:
        """One source's lightcurve (one band if given), sorted by time: raw measurements
        and compacted time bins merged into one series, each point with its
        ``resolution_s`` (0 raw) and ``kind`` ('blind', 'forced', 'monitor' or 'bin').
        ``resolution`` (s): re-bin everything finer to it."""
        return self._read(lightcurves.lightcurve, source_id, band, resolution)

    def lightcurve_variability(self, source_id: int, band: int) -> dict[str, float]:
        """eta and V of one source and band from its raw points and bins (exact)."""
        return self._read(lightcurves.variability, source_id, band)

    def monitors(self) -> pd.DataFrame:
        """The monitoring list."""
        return self._read(export.read, "monitors")

    def forks(self) -> pd.DataFrame:
        """One-to-many splits: lightcurve ``source_id`` forked from ``parent_id``."""
        return self._read(export.read, "forks")

    def cone(self, ra: float, dec: float, radius_deg: float) -> pd.DataFrame:
        """Sources within ``radius_deg`` of (ra, dec) (deg), nearest first."""
        return self._read(export.cone, ra, dec, radius_deg)


def open(url: str) -> Run:
    """Open a stored run: a SQLAlchemy URL or a SQLite file path."""
    return Run(url)
