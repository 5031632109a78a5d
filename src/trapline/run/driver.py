"""The one driver behind every mode: batch runs over files, live streams, in-process
or on Dask, one sky model or sky partitions.

It restores the stored run into the decider, decides each timestep in time order,
stores the timestep in one transaction, and only then publishes it and feeds the
plug-ins. The in-memory state never runs ahead of what is durable: when the
database stays unusable past ``[run] storage_outage_s`` the run stops at the last
stored timestep, and the next run resumes exactly there.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from trapline.channels import MemoryBroker, publish_result
from trapline.channels.base import Broker
from trapline.channels.publish import DEFAULT_CHANNELS
from trapline.errors import TraplineError
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.decide import Decider, SkyDecider
from trapline.pipeline.measure import Measured
from trapline.pipeline.monitor import monitor_positions
from trapline.pipeline.partition import PartitionedDecider
from trapline.plugins.base import PluginHost, load_plugins
from trapline.plugins.compactor import Compactor
from trapline.plugins.dbwriter import STATE_HEADER
from trapline.records import ImageResult
from trapline.run.executors import Measurer
from trapline.run.summary import RunSummary
from trapline.storage import StorageError, Store

log = logging.getLogger(__name__)

# Images whose time is within this of the newest one decided are not "older" (days).
_SAME_TIME_MJD = 1e-8


class RunStopped(TraplineError):
    """The run stopped before its end because its results could not be stored."""


def make_decider(config: PipelineConfig, client=None) -> Decider:
    """One sky model, or sky partitions when ``[run] partition_nside`` is set (as Dask
    actors when ``client`` is a Dask client)."""
    run = config.run
    if not run.partition_nside:
        return SkyDecider(config)
    decider = PartitionedDecider(config, run.partition_nside, run.partition_margin_deg)
    if client is not None:
        decider.use_client(client)
    return decider


class Driver:
    """Decides, stores and publishes timesteps, resuming from what ``store`` holds.

    ``broker``: where results are published for other processes (default: only the
    embedded broker that feeds ``plugins`` here); ``write_locally`` False when a
    database-writer plug-in consumes the broker elsewhere; ``measurer``: where images
    are measured (its Dask client, if any, also hosts partition actors)."""

    def __init__(self, store: Store, config: PipelineConfig | None = None,
                 broker: Broker | None = None, plugins: Sequence = (),
                 write_locally: bool = True, measurer: Measurer | None = None):
        self.store = store
        self.config = config or PipelineConfig()
        self.summary = RunSummary()
        measurer = measurer or Measurer(self.config, n_images=1)
        self.decider = make_decider(self.config, measurer.client)
        plugins = [*plugins, *load_plugins(self.config.plugins)]
        self.write_locally = write_locally
        self.compactor = (Compactor(store=store, config=self.config)
                          if write_locally else None)
        local = [p for p in (self.compactor,) if p is not None]
        self.broker = broker or MemoryBroker()
        self.host = PluginHost(self.broker, [*local, *plugins], consumer="runner",
                               db_url=str(store.url), max_deliveries=1)
        # The embedded broker carries only what is consumed here; a shared one, all.
        self.channels = (DEFAULT_CHANNELS if broker is not None else
                         {c for p in self.host.plugins for c in p.channels})
        state = store.load_state()
        self.decider.restore(state)
        # The precovery buffer as an uninterrupted run would have it: the newest stored
        # images, re-read (streamed images are kept on disk for this, see run.live).
        recent = [(p, scale, modulation) for p, scale, modulation in
                  store.recent_images(self.config.new_source.precovery_images)
                  if Path(p).exists()]
        if recent:
            measured = measurer.map([p for p, _, _ in recent])
            self.decider.remember([
                replace(m, record=replace(m.record, flux_scale=scale, flux_modulation=mod))
                for m, (_, scale, mod) in zip(measured, recent, strict=True)])
        self.newest_mjd = float(state.values.get("newest_time_mjd", "nan"))
        # Monitoring positions new to this run: stored with the first accepted image
        # (the monitor table refers to their source rows).
        self._new_monitors = self.decider.add_monitors(monitor_positions(self.config.forced))

    def state_values(self) -> dict[str, str]:
        """Run-state values stored with each timestep (for resuming)."""
        return {**self.decider.state_values(), "config": json.dumps(self.config.to_dict()),
                "newest_time_mjd": repr(self.newest_mjd)}

    def process(self, timestep: Sequence[Measured]) -> list[ImageResult]:
        """Decide, store and publish one timestep (the images of one time, any order).
        Images already stored are skipped untouched; images older than the newest one
        decided are rejected (the new-source and variability decisions assume time
        order). Raises :class:`RunStopped` when the timestep cannot be stored."""
        start = time.perf_counter()
        todo = []
        for m in timestep:
            if self._wait_out_outage(lambda key=m.record.image_key: self.store.has_image(key),
                                     len(timestep)):
                self.summary.skipped += 1
            else:
                todo.append(self._in_time_order(m))
        if not todo:
            return []
        results = self.decider.decide(todo)
        accepted = [r.image.time_mjd for r in results if r.image.accepted]
        if accepted:
            self.newest_mjd = max(accepted) if self.newest_mjd != self.newest_mjd else max(
                self.newest_mjd, *accepted)
        state = self.state_values()
        if self.write_locally:
            self._write(results, state)
        failures = self.host.failures
        for result in results:
            publish_result(self.broker, result, channels=self.channels,
                           headers={STATE_HEADER: json.dumps(state)})
        self.host.drain()
        self.summary.plugin_errors += self.host.failures - failures
        if self.compactor is not None:
            self.summary.compacted = self.compactor.rows_deleted
        for result in results:
            self.summary.add(result)
        self.summary.seconds += time.perf_counter() - start
        return results

    def _in_time_order(self, m: Measured) -> Measured:
        t = m.record.time_mjd
        if m.record.accepted and t < self.newest_mjd - _SAME_TIME_MJD:
            reason = (f"out of time order: MJD {t:.6f} is before MJD {self.newest_mjd:.6f}, "
                      "the newest image already processed (new sources and variability "
                      "assume time order; process older images in a new database)")
            log.warning("rejected %s: %s", m.record.path, reason)
            return Measured(replace(m.record, accepted=False, reject_reason=reason), None)
        return m

    def _write(self, results: list[ImageResult], state: dict[str, str]) -> None:
        """Store a timestep (and the monitoring positions new to the run with its first
        accepted image), waiting out a database outage."""
        self._wait_out_outage(lambda: self.store.write_timestep(results, state), len(results))
        if self._new_monitors and any(r.image.accepted for r in results):
            for entry in self._new_monitors:
                self._wait_out_outage(lambda e=entry: self.store.write_monitor(*e),
                                      len(results))
            self._new_monitors = []

    def _wait_out_outage(self, call, holding: int):
        """``call()``, retried with growing pauses while the database is unreachable, up
        to ``[run] storage_outage_s``; then (or at once for an error that waiting cannot
        mend, such as a full disk) :class:`RunStopped`."""
        deadline = time.monotonic() + self.config.run.storage_outage_s
        pause = 1.0
        while True:
            try:
                return call()
            except StorageError as exc:
                if not exc.transient or time.monotonic() + pause > deadline:
                    self.summary.storage_errors += holding
                    raise RunStopped(
                        f"{exc}; stopped after the last stored image: fix the database and "
                        "run again to resume there") from exc
                log.warning("database unusable (%s): holding %d images, retrying in %.0f s",
                            exc, holding, pause)
                time.sleep(pause)
                pause = min(2 * pause, 30.0)

    def close(self) -> None:
        """Count the sources (while partition actors live) and close the plug-ins."""
        self.summary.n_sources = self.decider.source_count()
        self.host.close()
