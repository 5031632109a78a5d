"""The live ingest: imagers -> decoded images -> timesteps -> a processing callback.

Sockets, decoding and timestep assembly run on one asyncio event loop; finished
timesteps wait in a bounded queue and are processed one at a time, in time order, in a
worker thread (for the pipeline: :class:`trapline.run.LiveProcessor`). When processing falls
behind (e.g. waiting out a database outage) and the queue is full, further timesteps
wait in an on-disk spool (:class:`~trapline.stream.spool.Spool`) and come back in order;
only when the spool is full too is the oldest waiting timestep dropped: counted in the
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
from trapline.stream.spool import Spool
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
        self.spool = Spool(config.spool_dir, int(config.spool_max_mb * 2**20))
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
        """Queue a finished timestep: in memory while there is room, else in the spool
        (after those there: while anything is spooled, the queue is full)."""
        if len(self._queue) < self.config.max_queue and not len(self.spool):
            self._queue.append(step)
        else:
            data = self.spool.encode(step) if self.spool.max_bytes else None
            # Spool full: drop the oldest waiting timesteps until this one fits.
            while data is not None and not self.spool.fits(data) and len(self.spool):
                self._drop_oldest()
                self._queue.append(self.spool.pop())  # the oldest spooled one moves up
            if data is not None and self.spool.fits(data):
                self.spool.append(data)
                self.metrics.timesteps_spooled += 1
            else:  # no spool, or a timestep larger than the whole spool
                self._drop_oldest()
                self._queue.append(step)
        self._count_waiting()
        self._wake.set()

    def _drop_oldest(self) -> None:
        old = self._queue.popleft()
        self.metrics.timesteps_dropped += 1
        self.metrics.dropped["queue_full"] += old.n_bands
        log.warning(
            "stream: processing is behind, queue full (%d timesteps) and spool full (%d "
            "timesteps, %.1f MB): dropped timestep at MJD %.6f (%d images)",
            self.config.max_queue, len(self.spool), self.spool.nbytes / 2**20,
            old.time_mjd, old.n_bands,
        )

    def _next(self) -> Timestep:
        """The oldest waiting timestep; the queue is refilled from the spool."""
        step = self._queue.popleft()
        while len(self.spool) and len(self._queue) < self.config.max_queue:
            self._queue.append(self.spool.pop())
        self._count_waiting()
        return step

    def _count_waiting(self) -> None:
        self.metrics.queue_depth = len(self._queue)
        self.metrics.spool_depth = len(self.spool)
        self.metrics.spool_bytes = self.spool.nbytes

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
                    cfg.host, cfg.port, self.on_frame, self.metrics, cfg.guard
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
                            cfg.guard,
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
            self.spool.close()
        log.info("%s", self.metrics.log_line())
        return self.metrics

    async def _process_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            timeout = self.assembler.poll()
            if self._queue:
                await self._process(loop, self._next())
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
            # The processor may add what it decided (e.g. candidates so far).
            progress = getattr(self.process, "progress", None)
            extra = f"; {progress()}" if callable(progress) else ""
            log.info("%s%s", self.metrics.log_line(), extra)


async def listen(
    config: StreamConfig,
    process: Processor,
    beam: Beam | None = None,
    duration_s: float | None = None,
) -> StreamMetrics:
    """Run a :class:`Listener` until ``duration_s`` (or cancelled); returns its metrics."""
    return await Listener(config, process, beam).run(duration_s)
