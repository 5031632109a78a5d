"""Shared test data for the channel, plug-in and alert tests (no tests here): the
ImageResults of a small simulated series with transients, and a database reader."""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import pandas as pd

import trapline.api
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.decide import SkyDecider
from trapline.pipeline.measure import measure
from trapline.records import ImageResult
from trapline.run import sort_by_time
from trapline.simulate import SimulationConfig, write_series

SIM = SimulationConfig(seed=4, epochs=8, bands=2, size=256, n_steady=15, n_variable=3,
                       n_transient=2, n_fading=1, variable_snr=(30, 200))


@functools.cache
def simulated_results() -> tuple[tuple[ImageResult, dict[str, str]], ...]:
    """(result, state headers) for each image of the series, in pipeline order."""
    out_dir = Path(tempfile.mkdtemp(prefix="trapline-channels-"))
    files = write_series(SIM, out_dir)
    config = PipelineConfig()
    decider = SkyDecider(config)
    out = []
    for path in sort_by_time([str(p) for p in files.images]):
        (result,) = decider.decide([measure(path, config)])
        out.append((result, decider.state_values()))
    return tuple(out)


def tables(url: str) -> dict[str, pd.DataFrame]:
    """The stored run, every table sorted, for comparisons."""
    with trapline.api.open(url) as run:
        return {
            # processed_at is the wall-clock time of the write: not part of the comparison
            "images": run.images().drop(columns=["processed_at"], errors="ignore")
            .sort_values("image_id").reset_index(drop=True),
            "sources": run.sources().sort_values("source_id").reset_index(drop=True),
            "measurements": run.measurements().sort_values(["source_id", "image_id", "kind"])
            .reset_index(drop=True),
            "variability": run.variability().sort_values(["source_id", "band"])
            .reset_index(drop=True),
            "candidates": run.candidates().sort_values(["source_id", "image_id", "kind"])
            .reset_index(drop=True),
        }
