"""Batch runs: image files in, ordered by time, grouped into timesteps, through the
driver."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
from tqdm import tqdm

from trapline.channels import open_broker
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.inputs import find_images, header_time_freq
from trapline.pipeline.measure import Measured
from trapline.run.driver import Driver, RunStopped
from trapline.run.executors import Measurer
from trapline.run.summary import RunSummary
from trapline.storage import Store

# Images of one timestep share their time to within this (days; 1 ms).
SAME_TIMESTEP_MJD = 1e-8


def timesteps(measured: Iterable[Measured]) -> Iterator[list[Measured]]:
    """Group consecutive images of equal observation time (all bands of one time).
    An image without a time is a timestep of its own."""
    group: list[Measured] = []
    for m in measured:
        t = m.record.time_mjd
        if group and not (abs(t - group[0].record.time_mjd) <= SAME_TIMESTEP_MJD):
            yield group
            group = []
        group.append(m)
    if group:
        yield group


def sort_by_time(paths: list[str], time_mjd: float = 0.0) -> list[str]:
    """Order images by observation time (then frequency) read from their headers, or
    ``time_mjd`` (``[image] time_mjd``, 0: none) for headers without one; files without
    a time keep their place at the end (they will be rejected)."""
    keyed = []
    for i, path in enumerate(paths):
        t, f = header_time_freq(path)
        if not np.isfinite(t) and time_mjd:
            t = time_mjd
        keyed.append((0 if np.isfinite(t) else 1, t if np.isfinite(t) else 0.0, f, i, path))
    keyed.sort()
    return [k[-1] for k in keyed]


def run_images(store: Store, sources: Sequence, config: PipelineConfig | None = None,
               progress: bool = False, scheduler: str | None = None, broker=None,
               plugins: Sequence = ()) -> RunSummary:
    """Run images (paths or :class:`~trapline.image.Image`, in time order) into an open
    store."""
    config = config or PipelineConfig()
    measurer = Measurer(config, scheduler, n_images=len(sources))
    finished = False
    bar = None
    driver = None
    try:
        driver = Driver(store, config, broker=broker, plugins=plugins, measurer=measurer)
        if progress:
            bar = tqdm(total=len(sources), unit="img", desc="trapline")
        for step in timesteps(measurer.map(sources)):
            driver.process(step)
            if bar is not None:
                bar.update(len(step))
        finished = True
    except RunStopped as exc:
        if driver is None:
            raise
        driver.summary.stopped = str(exc)
    finally:
        if driver is not None:
            driver.close()
        measurer.close(finished)
        if bar is not None:
            bar.close()
    return driver.summary


def run_files(inputs: list[str], db_url: str | None = None,
              config: PipelineConfig | None = None, progress: bool = False,
              scheduler: str | None = None, broker: str | None = None,
              plugins: Sequence = ()) -> RunSummary:
    """Run the pipeline over image files/folders/globs into a database (default SQLite).
    With ``scheduler`` (a Dask distributed address) the measuring runs on its workers;
    with ``broker`` (e.g. ``redis://``) every channel is published there too;
    ``plugins`` are fed in this process after each timestep."""
    paths = sort_by_time(find_images(inputs), (config or PipelineConfig()).image.time_mjd)
    with Store(db_url) as store:
        store.upgrade()
        shared = open_broker(broker) if broker else None
        try:
            return run_images(store, paths, config, progress, scheduler, shared, plugins)
        finally:
            if shared is not None:
                shared.close()  # publishes what an outage held back
