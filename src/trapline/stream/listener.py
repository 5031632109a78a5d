"""The live ingest: imagers -> decoded images -> timesteps -> a processing callback.

Sockets, decoding and timestep assembly run on one asyncio event loop; finished
timesteps wait in a bounded queue and are processed one at a time, in time order, in a
worker thread (by default the pipeline, storing every image). When processing falls
behind and the queue is full, the oldest waiting timestep is dropped: counted in the
metrics and logged, never silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from trapline.errors import ImageError
from trapline.image import Beam
from trapline.stream.assembler import Assembler, Timestep
from trapline.stream.client import connect_loop
from trapline.stream.config import StreamConfig
from trapline.stream.metrics import StreamMetrics
from trapline.stream.server import bound_port, start_metrics_server, start_server
from trapline.stream.wire import Frame, frame_to_image

log = logging.getLogger(__name__)

Processor = Callable[[Timestep], None]


class Listener:
    """Receive images from imagers and hand complete timesteps to ``process``.

    ``process`` is called in a single worker thread, one timestep at a time, in time
    order. If it has ``open()`` / ``close()`` methods they are called in that thread
    before the first and after the last timestep.

    Usage::

        listener = Listener(StreamConfig(port=6666, bands=4), process)
        asyncio.run(listener.run(duration_s=60))   # or listener.stop() from the loop
    """

    def __init__(self, config: StreamConfig, process: Processor, beam: Beam | None = None):
        self.config = config
        self.process = process
        self.beam = beam
        self.metrics = StreamMetrics()
        self.assembler = Assembler(self._enqueue, config.bands, config.max_wait_s, self.metrics)
        self.ports: list[int] = []
        self.metrics_port: int | None = None
        self.started = asyncio.Event()
        self._queue: deque[Timestep] = deque()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="trapline-process")

    # -- receiving -------------------------------------------------------------------

    def on_frame(self, frame: Frame, peer: str) -> None:
        """Decode a frame into an Image and give it to the assembler."""
        try:
            image = frame_to_image(frame, self.beam)
        except ImageError as exc:
            self.metrics.rejected[exc.reason] += 1
            log.warning("stream: image from %s rejected (%s): %s", peer, exc.reason, exc)
            return
        image.meta["peer"] = peer
        image.meta["wire_format"] = frame.format
        self.metrics.images_decoded += 1
        self.assembler.add(image)
        self._wake.set()

    def _enqueue(self, step: Timestep) -> None:
        if len(self._queue) >= self.config.max_queue:
            old = self._queue.popleft()
            self.metrics.timesteps_dropped += 1
            self.metrics.dropped["queue_full"] += old.n_bands
            log.warning(
                "stream: processing is behind, queue full (%d timesteps): dropped "
                "timestep at MJD %.6f (%d images)",
                self.config.max_queue,
                old.time_mjd,
                old.n_bands,
            )
        self._queue.append(step)
        self.metrics.queue_depth = len(self._queue)
        self._wake.set()

    # -- running ---------------------------------------------------------------------

    def stop(self) -> None:
        """Ask :meth:`run` to finish: stop receiving, process what is queued, return."""
        self._stop.set()
        self._wake.set()

    async def run(self, duration_s: float | None = None) -> StreamMetrics:
        """Listen (and/or connect) until :meth:`stop` or ``duration_s``; returns metrics."""
        cfg = self.config
        loop = asyncio.get_running_loop()
        if hasattr(self.process, "open"):
            await loop.run_in_executor(self._executor, self.process.open)  # type: ignore[attr-defined]
        servers: list[asyncio.Server] = []
        tasks: list[asyncio.Task] = []
        try:
            if cfg.port is not None:
                server = await start_server(
                    cfg.host, cfg.port, self.on_frame, self.metrics, cfg.limits, cfg.read_timeout_s
                )
                servers.append(server)
                self.ports.append(bound_port(server))
                log.info("stream: listening on %s:%d", cfg.host, self.ports[-1])
            if cfg.metrics_port is not None:
                msrv = await start_metrics_server(
                    cfg.metrics_host, cfg.metrics_port, self.metrics.prometheus
                )
                servers.append(msrv)
                self.metrics_port = bound_port(msrv)
                log.info(
                    "stream: metrics on http://%s:%d/metrics", cfg.metrics_host, self.metrics_port
                )
            for host, port in cfg.connect:
                tasks.append(
                    asyncio.create_task(
                        connect_loop(
                            host,
                            port,
                            self.on_frame,
                            self.metrics,
                            cfg.limits,
                            cfg.read_timeout_s,
                            cfg.reconnect_initial_s,
                            cfg.reconnect_max_s,
                        )
                    )
                )
            if cfg.log_every_s:
                tasks.append(asyncio.create_task(self._log_metrics(cfg.log_every_s)))
            if duration_s is not None:
                loop.call_later(duration_s, self.stop)
            self.started.set()
            await self._process_loop()
        finally:
            for t in tasks:
                t.cancel()
            for s in servers:
                s.close()
            for t in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await t
            if hasattr(self.process, "close"):
                await loop.run_in_executor(self._executor, self.process.close)  # type: ignore[attr-defined]
            self._executor.shutdown(wait=True)
        log.info("%s", self.metrics.log_line())
        return self.metrics

    async def _process_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            timeout = self.assembler.poll()
            if self._queue:
                step = self._queue.popleft()
                self.metrics.queue_depth = len(self._queue)
                await self._process(loop, step)
                continue
            if self._stop.is_set():
                self.assembler.flush()
                if not self._queue:
                    return
                continue
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _process(self, loop: asyncio.AbstractEventLoop, step: Timestep) -> None:
        # Deadlines keep running while the worker is busy: a timer polls the assembler.
        ticker = asyncio.create_task(self._tick_while_busy())
        start = time.monotonic()
        if step.first_seen:
            self.metrics.observe("wait", start - step.first_seen)
        try:
            await loop.run_in_executor(self._executor, self.process, step)
            self.metrics.images_processed += step.n_bands
            done = time.monotonic()
            self.metrics.observe("processing", done - start)
            if step.first_seen:
                self.metrics.observe("latency", done - step.first_seen)
        except Exception:  # noqa: BLE001 - one bad timestep must not stop the listener
            self.metrics.processing_errors += 1
            log.exception("stream: processing the timestep at MJD %.6f failed", step.time_mjd)
        finally:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        self.metrics.timesteps_processed += 1

    async def _tick_while_busy(self) -> None:
        while True:
            delay = self.assembler.poll()
            await asyncio.sleep(min(delay if delay is not None else 0.1, 0.1) or 0.01)

    async def _log_metrics(self, every_s: float) -> None:
        while True:
            await asyncio.sleep(every_s)
            log.info("%s", self.metrics.log_line())


class PipelineProcessor:
    """The default processing: measure the bands of a timestep in parallel worker
    processes (``config.run.workers``, 0 = one per core), then decide and store them in
    order with the pipeline's :class:`~trapline.pipeline.runner.Runner` (lowest frequency
    first).

    The store is opened in the processing thread (``open()``) and closed by ``close()``.
    ``latencies_s`` holds, per timestep, the time from its first image's arrival to its
    last image stored (the assembler's monotonic clock); ``alert_latencies_s`` the time
    from arrival to the first alert published by a plug-in (``plugins``, e.g. the
    alerter), for timesteps that raised one.
    """

    def __init__(self, db_url: str | None, config=None, scheduler: str | None = None,
                 plugins=()):
        from trapline.pipeline.config import PipelineConfig

        self.db_url = db_url
        self.config = config or PipelineConfig()
        self.scheduler = scheduler
        self.plugins = list(plugins)
        self.store = None
        self.runner = None
        self.pool = None
        self.client = None
        self.seconds = 0.0
        self.latencies_s: list[float] = []
        self.alert_latencies_s: list[float] = []

    def open(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        from trapline.pipeline.runner import Runner, _init_worker, default_workers
        from trapline.storage import Store

        self.store = Store(self.db_url)
        self.store.upgrade()
        self.runner = Runner(self.store, self.config, plugins=self.plugins)
        if self.scheduler:
            from trapline.pipeline.distributed import connect

            self.client, _ = connect(self.scheduler)
            self.pool = self.client.get_executor()
            return
        workers = self.config.run.workers or default_workers()
        if workers > 1:
            self.pool = ProcessPoolExecutor(workers, initializer=_init_worker)

    def __call__(self, step: Timestep) -> None:
        from trapline.pipeline.measure import measure

        if self.runner is None:
            self.open()
        start = time.perf_counter()
        if self.pool is not None and (len(step.images) > 1 or self.client is not None):
            measured = [f.result() for f in [self.pool.submit(measure, image, self.config)
                                             for image in step.images]]
        else:
            measured = [measure(image, self.config) for image in step.images]
        alerts = self._alerts_published()
        for m in measured:
            self.runner.process_one(m)  # type: ignore[union-attr]
            if step.first_seen and self._alerts_published() > alerts:
                alerts = self._alerts_published()
                self.alert_latencies_s.append(time.monotonic() - step.first_seen)
        self.seconds += time.perf_counter() - start
        self.runner.summary.seconds = self.seconds  # type: ignore[union-attr]
        if step.first_seen:
            self.latencies_s.append(time.monotonic() - step.first_seen)

    def _alerts_published(self) -> int:
        return sum(getattr(p, "published", 0) for p in self.plugins)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = self.pool = None
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None
        if self.runner is not None:
            sky = self.runner.pipeline.sky.sources
            self.runner.summary.n_sources = int((~sky.is_monitor).sum())
            self.runner.host.close()  # plug-ins flush (e.g. the alert sinks' deliveries)
        if self.store is not None:
            self.store.close()
            self.store = None


async def listen(
    config: StreamConfig,
    process: Processor,
    beam: Beam | None = None,
    duration_s: float | None = None,
) -> StreamMetrics:
    """Run a :class:`Listener` until ``duration_s`` (or cancelled); returns its metrics."""
    return await Listener(config, process, beam).run(duration_s)
