"""The live adapter: timesteps assembled by the stream listener, through the driver.

Streamed images are kept as FITS files in ``[run] live_image_dir`` (the newest
``[new_source] precovery_images`` per band, older ones deleted): they are measured from
there, so a restarted listener re-reads them into its precovery buffer and decides as
an uninterrupted one would, and the web interface has pictures of them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from trapline.image import Image
from trapline.io.fits import write_fits
from trapline.pipeline.config import PipelineConfig
from trapline.run.driver import Driver, RunStopped
from trapline.run.executors import Measurer
from trapline.storage import Store
from trapline.storage.engine import normalise_url
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
        self.seconds = 0.0  # spent processing timesteps (measure, decide, store, publish)
        self.image_dir = live_image_dir(db_url, self.config.run.live_image_dir)
        self._kept: dict[int, deque[Path]] = {}
        # Called (from the processing thread) when the database stays unusable: the
        # listener should stop, as nothing more can be stored.
        self.on_stopped: Callable[[str], None] | None = None

    def open(self) -> None:
        if self.image_dir is not None and self.image_dir.is_dir():
            # Files of an earlier session, oldest first (named by time), pruned as we go.
            for path in sorted(self.image_dir.glob("*Hz.fits")):
                freq = float(path.stem.split("_")[-1][:-2])
                self._kept.setdefault(round(freq / 1e3), deque()).append(path)
        self.store = Store(self.db_url)
        self.store.upgrade()
        self.measurer = Measurer(self.config, self.scheduler)
        self.driver = Driver(self.store, self.config, plugins=self.plugins,
                             measurer=self.measurer)

    def __call__(self, step: Timestep) -> None:
        if self.driver is None:
            self.open()
        if self.driver.summary.stopped:
            raise RunStopped(self.driver.summary.stopped)
        alerts = self._alerts_published()
        start = time.perf_counter()
        images = [self._keep(image) for image in step.images]
        try:
            self.driver.process(self.measurer.measure_all(images))
        except RunStopped as exc:
            # The decided state ran ahead of the database: decide nothing more.
            self.driver.summary.stopped = str(exc)
            if self.on_stopped is not None:
                self.on_stopped(str(exc))
            raise
        finally:
            self.seconds += time.perf_counter() - start
        if step.first_seen:
            now = time.monotonic()
            self.latencies_s.append(now - step.first_seen)
            if self._alerts_published() > alerts:
                self.alert_latencies_s.append(now - step.first_seen)

    def _keep(self, image: Image) -> Image | str:
        """The image written to the image folder (its path, to be measured from there);
        the oldest files of its band beyond the precovery buffer's length deleted."""
        keep = self.config.new_source.precovery_images
        if self.image_dir is None or keep <= 0:
            return image
        self.image_dir.mkdir(parents=True, exist_ok=True)
        path = self.image_dir / f"{image.time_mjd:.9f}_{image.freq_hz:.0f}Hz.fits"
        write_fits(replace(image, path=str(path)), path)
        band = round(image.freq_hz / 1e3)  # kHz: images of one band share it
        kept = self._kept.setdefault(band, deque())
        kept.append(path)
        while len(kept) > keep:
            kept.popleft().unlink(missing_ok=True)
        return str(path)

    def progress(self) -> str:
        """A line of what was decided so far (the listener logs it periodically)."""
        summary = self.summary
        if summary is None:
            return "pipeline: starting"
        found = ", ".join(f"{k} {v}" for k, v in sorted(summary.candidates.items())) or "none"
        return (f"pipeline: {summary.accepted} images accepted, "
                f"{sum(summary.rejected.values())} rejected; candidates: {found}")

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


def live_image_dir(db_url: str | None, configured: str) -> Path | None:
    """Where streamed images are kept: ``configured``; '' : beside an SQLite database
    file (``NAME.sqlite-images``), else ``./trapline-live-images``; 'none': not kept."""
    if configured == "none":
        return None
    if configured:
        return Path(configured)
    url = normalise_url(db_url) if db_url else None
    if url is not None and url.get_backend_name() == "sqlite" and url.database:
        return Path(url.database + "-images")
    return Path("trapline-live-images")
