"""Running the pipeline over a set of images: measuring in parallel worker processes,
deciding in order, storing one transaction per image.

Image n+1 (and the next few) are read and extracted by workers while image n is
associated here, so the ordered stage never waits on I/O or extraction once the
pipeline is full. Results are identical to a sequential run: only the measuring stage,
which depends on nothing but the image, runs out of order.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from trapline.image import Image
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.core import Pipeline
from trapline.pipeline.measure import Measured, measure
from trapline.pipeline.records import ImageResult

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did, for the closing report."""

    accepted: int = 0
    rejected: Counter = field(default_factory=Counter)
    skipped: int = 0
    candidates: Counter = field(default_factory=Counter)
    measurements: Counter = field(default_factory=Counter)
    n_sources: int = 0
    seconds: float = 0.0
    storage_errors: int = 0
    compacted: int = 0

    def add(self, result: ImageResult) -> None:
        if result.image.accepted:
            self.accepted += 1
        else:
            self.rejected[(result.image.reject_reason or "rejected").split(":")[0]] += 1
        for kind, level in zip(result.candidates.kind, result.candidates.level, strict=True):
            self.candidates[f"{kind} ({level})"] += 1
        kinds, counts = np.unique(result.measurements.kind, return_counts=True)
        names = {0: "blind", 1: "forced", 2: "monitor"}
        for k, c in zip(kinds, counts, strict=True):
            self.measurements[names[int(k)]] += int(c)

    def report(self) -> str:
        images = self.accepted + sum(self.rejected.values())
        lines = [f"images: {images} processed in {self.seconds:.1f} s "
                 f"({images / max(self.seconds, 1e-9):.1f} images/s), {self.accepted} accepted, "
                 f"{sum(self.rejected.values())} rejected, {self.skipped} already stored"]
        for reason, n in sorted(self.rejected.items()):
            lines.append(f"  rejected ({reason}): {n}")
        lines.append(f"sources: {self.n_sources}; measurements: "
                     + ", ".join(f"{k} {v}" for k, v in sorted(self.measurements.items())))
        if self.candidates:
            lines.append("candidates: " + ", ".join(
                f"{k} {v}" for k, v in sorted(self.candidates.items())))
        else:
            lines.append("candidates: none")
        if self.compacted:
            lines.append(f"lightcurves: {self.compacted} old points down-sampled into bins")
        if self.storage_errors:
            lines.append(f"storage errors: {self.storage_errors} images not stored (see log)")
        return "\n".join(lines)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def _init_worker() -> None:
    # One BLAS thread per worker: the processes already use every core.
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass


def measured_stream(sources: Iterable[str | Image], config: PipelineConfig,
                    executor: Executor | None, in_flight: int) -> Iterator[Measured]:
    """Measure images, in input order, keeping up to ``in_flight`` ahead in the workers."""
    if executor is None:
        for source in sources:
            yield measure(source, config)
        return
    pending: deque[Future] = deque()
    for source in sources:
        pending.append(executor.submit(measure, source, config))
        if len(pending) >= in_flight:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


class Runner:
    """Couples the in-memory pipeline with a store, resuming from what it holds."""

    def __init__(self, store, config: PipelineConfig | None = None, broker=None,
                 plugins: Sequence = (), write_locally: bool = True):
        """``broker``: where results are published (default: the embedded one);
        ``plugins``: more consumers fed in this process after each image;
        ``write_locally`` False when a DB-writer plug-in consumes the broker elsewhere."""
        from trapline.channels import MemoryBroker
        from trapline.plugins import PluginHost
        from trapline.plugins.compactor import Compactor
        from trapline.plugins.dbwriter import DBWriter

        self.store = store
        self.config = config or PipelineConfig()
        run = self.config.run
        if run.partition_nside:
            from trapline.pipeline.partition import PartitionedPipeline

            self.pipeline = PartitionedPipeline(self.config, run.partition_nside,
                                                run.partition_margin_deg)
        else:
            self.pipeline = Pipeline(self.config)
        self.summary = RunSummary()
        if self.config.plugins:
            from trapline.plugins.base import load_plugins

            plugins = [*plugins, *load_plugins(self.config.plugins)]
        self.broker = broker or MemoryBroker()
        self.writer = DBWriter(store=store) if write_locally else None
        self.compactor = Compactor(store=store, config=self.config) if write_locally else None
        local = [p for p in (self.writer, self.compactor) if p is not None]
        # max_deliveries=1: a storage error is logged and counted, as before (the
        # store already retries transient errors with backoff).
        self.host = PluginHost(self.broker, [*local, *plugins], consumer="runner",
                               db_url=str(store.url), max_deliveries=1)
        # The embedded broker carries only what is consumed here; a shared one, all.
        from trapline.channels.publish import DEFAULT_CHANNELS

        self.channels = (DEFAULT_CHANNELS if broker is not None else
                         {c for p in self.host.plugins for c in p.channels})
        # Monitoring positions new to this run: stored once their source row exists,
        # that is with the first accepted image (the monitor table refers to it).
        self._new_monitors: list[tuple[str, float, float, int]] = []
        self._restore()

    def _restore(self) -> None:
        from trapline.pipeline.monitor import monitor_positions
        from trapline.pipeline.resume import restore

        state = self.store.load_state()
        if not isinstance(self.pipeline, Pipeline):
            if monitor_positions(self.config.forced):
                from trapline.errors import ConfigError

                raise ConfigError("[run] partition_nside: sky partitions take no monitoring "
                                  "list yet")
            self._partitioned_state = state
            return
        restore(self.pipeline, state)

        known = {(round(float(r), 7), round(float(d), 7)) for r, d in zip(
            self.pipeline.sky.sources.ra[self.pipeline.sky.sources.is_monitor],
            self.pipeline.sky.sources.dec[self.pipeline.sky.sources.is_monitor], strict=True)}
        for ra, dec, name in monitor_positions(self.config.forced):
            if (round(ra, 7), round(dec, 7)) not in known:
                rows = self.pipeline.add_monitors(np.array([ra]), np.array([dec]))
                source_id = int(self.pipeline.sky.sources.source_id[rows[0]])
                self._new_monitors.append((name, ra, dec, source_id))

    def state_values(self) -> dict[str, str]:
        p = self.pipeline
        if not isinstance(p, Pipeline):
            return {**p.state_values(), "config": json.dumps(self.config.to_dict())}
        return {"next_source_id": str(p.sky.next_id),
                "depth_nside": str(p.depth.nside),
                "band_centres_hz": json.dumps(p.bands.centres),
                "config": json.dumps(self.config.to_dict())}

    def run(self, sources: Iterable[str | Image], progress: bool = False,
            scheduler: str | None = None) -> RunSummary:
        """Process images in time order. ``scheduler``: address of a Dask distributed
        scheduler (``tcp://host:port``) whose workers then do the measuring stage."""
        start = time.perf_counter()
        sources = list(sources)
        workers = self.config.run.workers or default_workers()
        client = None
        if scheduler:
            from trapline.pipeline.distributed import connect

            client, workers = connect(scheduler)
            executor = client.get_executor()
            if not isinstance(self.pipeline, Pipeline):
                self.pipeline.use_client(client)
        elif workers > 1 and len(sources) > 1:
            executor = ProcessPoolExecutor(workers, initializer=_init_worker)
        else:
            executor = None
        if getattr(self, "_partitioned_state", None) is not None:
            # Partitions are rebuilt here, once it is known where they live.
            self.pipeline.restore(self._partitioned_state)
            self._partitioned_state = None
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(sources), unit="img", desc="trapline")
        finished = False
        try:
            stream = measured_stream(sources, self.config, executor,
                                     self.config.run.max_in_flight * workers)
            for measured in stream:
                self.process_one(measured)
                if bar is not None:
                    bar.update(1)
            self.summary.n_sources = self._n_sources()  # while partition actors live
            finished = True
        finally:
            if client is not None:
                client.close()
            elif executor is not None:
                # Done: let the idle workers exit (and be reaped); failing: drop the rest.
                executor.shutdown(wait=finished, cancel_futures=not finished)
            if bar is not None:
                bar.close()
        self.summary.seconds += time.perf_counter() - start
        return self.summary

    def _n_sources(self) -> int:
        if isinstance(self.pipeline, Pipeline):
            return int((~self.pipeline.sky.sources.is_monitor).sum())
        return len(self.pipeline.owned_source_ids())

    def process_one(self, measured: Measured) -> ImageResult | None:
        """Decide and store one image; an image already stored is skipped untouched."""
        if self.store.has_image(measured.record.image_key):
            self.summary.skipped += 1
            return None
        result = self.pipeline.process(measured)
        from trapline.channels import publish_result
        from trapline.plugins.dbwriter import STATE_HEADER

        before = self.writer.written if self.writer else 0
        failures = self.host.failures
        publish_result(self.broker, result, channels=self.channels,
                       headers={STATE_HEADER: json.dumps(self.state_values())})
        self.host.drain()
        if self.writer is not None:
            self.summary.storage_errors += self.host.failures - failures
            if self.writer.written > before:
                if result.image.accepted:
                    while self._new_monitors:
                        self.store.write_monitor(*self._new_monitors[0])
                        self._new_monitors.pop(0)
            self.summary.compacted = self.compactor.rows_deleted
        self.summary.add(result)
        return result


def tiers_of(config: PipelineConfig) -> list:
    from trapline.storage.compaction import Tier

    return [Tier(float(r), float(k)) for r, k in config.lightcurves.tiers]


def run_files(inputs: list[str], db_url: str | None = None,
              config: PipelineConfig | None = None, progress: bool = False,
              scheduler: str | None = None, broker: str | None = None,
              plugins: Sequence = ()) -> RunSummary:
    """Run the pipeline over image files/folders/globs into a database (default SQLite).
    With ``scheduler`` (a Dask distributed address) the measuring runs on its workers;
    with ``broker`` (e.g. ``redis://``) every channel is published there too;
    ``plugins`` are fed in this process after each image."""
    from trapline.pipeline.ingest import find_images
    from trapline.storage import Store

    paths = find_images(inputs)
    paths = sort_by_time(paths)
    with Store(db_url) as store:
        store.upgrade()
        shared = None
        if broker:
            from trapline.channels import open_broker

            shared = open_broker(broker)
        runner = Runner(store, config, broker=shared, plugins=plugins)
        try:
            return runner.run(paths, progress=progress, scheduler=scheduler)
        finally:
            runner.host.close()  # plug-ins flush (e.g. the alert sinks' queued deliveries)


def sort_by_time(paths: list[str]) -> list[str]:
    """Order images by observation time (then frequency) read from their headers; files
    whose header cannot be read keep their place at the end (they will be rejected)."""
    from trapline.pipeline.ingest import header_time_freq

    keyed = []
    for i, path in enumerate(paths):
        t, f = header_time_freq(path)
        keyed.append((0 if np.isfinite(t) else 1, t if np.isfinite(t) else 0.0, f, i, path))
    keyed.sort()
    return [k[-1] for k in keyed]
