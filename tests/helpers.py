"""Shared test helpers: simulated images with known truth, and matching to truth."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.spatial import cKDTree

from trapline.image import Image

SHARED_DATA = Path(
    os.environ.get("TRAPLINE_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
)


# The Redis server the broker tests use (the machine's own).
REDIS_URL = os.environ.get("TRAPLINE_TEST_REDIS", "redis://127.0.0.1:6379/0")


def shared(relative: str) -> Path:
    """Path of a file in ../shared/data (read in place, never copied into the repo)."""
    return SHARED_DATA / relative


def match_to_truth(
    image: Image, found: pd.DataFrame, truth: pd.DataFrame, radius_pix: float = 2.0
) -> tuple[pd.DataFrame, np.ndarray]:
    """For every true source (peak > 0) the index of the nearest detection within
    ``radius_pix``, or -1; returns (truth rows, indices)."""
    truth = truth[truth.peak_jy > 0].reset_index(drop=True)
    tx, ty = image.sky_to_pixel(truth.ra.to_numpy(), truth.dec.to_numpy())
    if len(found) == 0:
        return truth, np.full(len(truth), -1)
    dist, idx = cKDTree(np.c_[found.x_pix, found.y_pix]).query(np.c_[tx, ty])
    return truth, np.where(dist <= radius_pix, idx, -1)


def stream_through(processor, sim, fmt: str = "gijs", bands: int | None = None,
                   epochs: slice = slice(None)):
    """Send a simulated series (its ``epochs``) over a socket to a Listener feeding
    ``processor``; wait until every image is processed; return the listener's metrics."""
    import asyncio
    import itertools

    from trapline.stream.config import StreamConfig
    from trapline.stream.listener import Listener
    from trapline.stream.sender import send_timesteps, simulated_timesteps

    async def main():
        config = StreamConfig(port=0, bands=bands or sim.bands, log_every_s=0)
        listener = Listener(config, processor)
        task = asyncio.create_task(listener.run())
        await listener.started.wait()
        sent = await send_timesteps("127.0.0.1", listener.ports[0],
                                    itertools.islice(simulated_timesteps(sim), epochs.start,
                                                     epochs.stop), fmt)
        for _ in range(600):
            if listener.metrics.images_processed == sent:
                break
            await asyncio.sleep(0.05)
        listener.stop()
        return await task

    return asyncio.run(main())


class PrivateRedis:
    """A redis-server of the test's own on a free port (never the machine's): stop it
    and start it again to make an outage. Without automatic snapshots, like the
    machine's; ``stop()`` saves its data first (``SHUTDOWN SAVE``) so the restarted
    server holds the streams and groups again, as a persistent deployment would."""

    def __init__(self, directory: Path):
        import shutil
        import socket

        self.binary = shutil.which("redis-server")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self) -> None:
        import subprocess
        import time

        import redis

        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--daemonize", "no", "--dir", str(self.directory)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        for _ in range(200):
            try:
                client.ping()
                return
            except redis.RedisError:
                time.sleep(0.02)
        raise RuntimeError(f"private redis-server on port {self.port} did not start")

    def stop(self) -> None:
        import redis

        if self.process is None:
            return
        try:
            redis.Redis(port=self.port).shutdown(save=True)
        except redis.ConnectionError:
            pass  # the server closes the connection as it exits
        self.process.wait(10)
        self.process = None


def run_tables(url: str) -> dict[str, pd.DataFrame]:
    """A stored run's sources, measurements, variability and candidates, without the
    ids and times that differ between two runs of the same images (row ids, processing
    order), sorted: two runs that decided the same compare equal."""
    import trapline.api

    with trapline.api.open(url) as run:
        return {
            "sources": run.sources().drop(columns=["first_time", "last_time"]),
            "measurements": run.measurements().drop(columns=["measurement_id", "image_id"])
            .sort_values(["source_id", "time_mjd"]).reset_index(drop=True),
            "variability": run.variability(),
            "candidates": run.candidates().drop(columns=["candidate_id", "image_id"])
            .sort_values(["source_id", "time_mjd", "kind"]).reset_index(drop=True),
        }


def assert_same_run(a: str, b: str) -> None:
    """The stored runs at ``a`` and ``b`` decided the same (see :func:`run_tables`)."""
    ta, tb = run_tables(a), run_tables(b)
    for name in ta:
        pd.testing.assert_frame_equal(tb[name], ta[name], obj=name)


def wait_until_accepting(port: int, timeout_s: float = 10.0, alive=lambda: True) -> None:
    """Return once something accepts TCP connections on 127.0.0.1:``port``; fail after
    ``timeout_s`` or as soon as ``alive()`` (e.g. the server process running) is false."""
    import socket
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            assert time.monotonic() < deadline and alive(), f"nothing accepts on port {port}"
            time.sleep(0.05)
