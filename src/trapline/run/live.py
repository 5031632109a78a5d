"""The live adapter: timesteps assembled by the stream listener, through the driver."""

from __future__ import annotations

import time

from trapline.pipeline.config import PipelineConfig
from trapline.run.driver import Driver
from trapline.run.executors import Measurer
from trapline.storage import Store
from trapline.stream.assembler import Timestep


class LiveProcessor:
    """The listener's processing: measure a timestep's bands at once (in worker
    processes, or on Dask workers with ``scheduler``), then decide, store and publish
    it with the :class:`~trapline.run.driver.Driver`.

    The listener calls ``open()``, each timestep, and ``close()`` in one thread.
    ``latencies_s`` holds, per timestep, the time from its first image's arrival to its
    storage (the assembler's monotonic clock); ``alert_latencies_s`` the time from
    arrival to the first alert published by a plug-in (``plugins``, e.g. the alerter),
    for timesteps that raised one."""

    def __init__(self, db_url: str | None, config: PipelineConfig | None = None,
                 scheduler: str | None = None, plugins=()):
        self.db_url = db_url
        self.config = config or PipelineConfig()
        self.scheduler = scheduler
        self.plugins = list(plugins)
        self.store: Store | None = None
        self.driver: Driver | None = None
        self.measurer: Measurer | None = None
        self.latencies_s: list[float] = []
        self.alert_latencies_s: list[float] = []

    def open(self) -> None:
        self.store = Store(self.db_url)
        self.store.upgrade()
        self.measurer = Measurer(self.config, self.scheduler)
        self.driver = Driver(self.store, self.config, plugins=self.plugins,
                             client=self.measurer.client)

    def __call__(self, step: Timestep) -> None:
        if self.driver is None:
            self.open()
        alerts = self._alerts_published()
        self.driver.process(self.measurer.measure_all(step.images))
        if step.first_seen:
            now = time.monotonic()
            self.latencies_s.append(now - step.first_seen)
            if self._alerts_published() > alerts:
                self.alert_latencies_s.append(now - step.first_seen)

    @property
    def summary(self):
        return None if self.driver is None else self.driver.summary

    def _alerts_published(self) -> int:
        plugins = self.driver.host.plugins if self.driver is not None else self.plugins
        return sum(getattr(p, "published", 0) for p in plugins)

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()
        if self.measurer is not None:
            self.measurer.close()
        if self.store is not None:
            self.store.close()
            self.store = None
