"""Where the measuring stage runs: in this process, in a pool of worker processes (one
per core), or on the workers of a Dask distributed cluster. One :class:`Measurer`
over the three, so every driver measures the same way.

Measuring (read, quality control, extraction) depends on nothing but the image, so it
runs ahead of the ordered stage, out of order; results come back in input order.
Dask is an optional dependency (``pip install trapline[distributed]``).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor

from trapline.errors import TraplineError, install_hint
from trapline.image import Image
from trapline.pipeline.config import PipelineConfig
from trapline.pipeline.measure import Measured, measure


def default_workers() -> int:
    """The cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def connect(address: str, timeout_s: float = 5.0):
    """A Dask client on a running scheduler and its number of worker threads."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise TraplineError(install_hint("--scheduler (Dask)", "distributed", exc)) from exc
    try:
        client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise TraplineError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    threads = sum(client.nthreads().values()) or 1
    return client, threads


def _init_worker(parent_pid: int) -> None:
    """In each pool worker: one BLAS thread (the processes already use every core), and
    exit as soon as the parent is gone (a killed run leaves no orphans behind)."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover
        pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="trapline-parent-watch").start()


class Measurer:
    """Measures images in this process, a process pool (``[run] workers``, 0: one per
    core) or on a Dask cluster (``scheduler``: ``tcp://host:port``). ``client`` is the
    Dask client (sky partitions run as actors on it), or None."""

    def __init__(self, config: PipelineConfig, scheduler: str | None = None,
                 n_images: int | None = None):
        self.config = config
        self.client = None
        self._executor: Executor | None = None
        if scheduler:
            self.client, self.workers = connect(scheduler)
            self._executor = self.client.get_executor()
            return
        self.workers = config.run.workers or default_workers()
        if self.workers > 1 and (n_images is None or n_images > 1):
            self._executor = ProcessPoolExecutor(self.workers, initializer=_init_worker,
                                                 initargs=(os.getpid(),))

    def map(self, sources: Iterable[str | Image]) -> Iterator[Measured]:
        """Measure images, in input order, keeping ``[run] max_in_flight`` per worker
        ahead in the workers."""
        if self._executor is None:
            for source in sources:
                yield measure(source, self.config)
            return
        in_flight = self.config.run.max_in_flight * self.workers
        pending: deque[Future] = deque()
        for source in sources:
            pending.append(self._executor.submit(measure, source, self.config))
            if len(pending) >= in_flight:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()

    def measure_all(self, images: Sequence[str | Image]) -> list[Measured]:
        """Measure a timestep's images at once."""
        if self._executor is None or (len(images) < 2 and self.client is None):
            return [measure(image, self.config) for image in images]
        futures = [self._executor.submit(measure, image, self.config) for image in images]
        return [f.result() for f in futures]

    def close(self, finished: bool = True) -> None:
        """Release the workers: done, let idle ones exit; failing, drop what is queued."""
        if self.client is not None:
            self.client.close()
        elif self._executor is not None:
            self._executor.shutdown(wait=finished, cancel_futures=not finished)
        self.client = self._executor = None
