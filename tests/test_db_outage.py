"""Database outages: a private PostgreSQL server that the test starts, stops for a few
seconds in the middle of a run and starts again. The run holds its images, waits the
outage out and loses nothing; an outage longer than ``[run] storage_outage_s`` stops
the run at the last stored timestep, and the rerun completes it exactly."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from helpers import assert_same_run

from trapline.pipeline.config import PipelineConfig
from trapline.run import run_files
from trapline.simulate import SimulationConfig, write_series

pytest.importorskip("psycopg")
BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
pytestmark = pytest.mark.skipif(not BIN or shutil.which("runuser") is None,
                                reason="no PostgreSQL server binaries (postgresql package)")


class PrivateServer:
    """A PostgreSQL cluster of the test's own on a free port (stopped and started at will)."""

    def __init__(self, folder: Path):
        self.bin = Path(BIN[-1])
        self.data = folder / "pgdata"
        self.sock = folder / "sock"
        self.sock.mkdir()
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        for path in (folder, self.sock):
            os.chmod(path, 0o777)
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust",
                          "-U", "postgres")
        self.start()

    def _as_postgres(self, *command: str) -> None:
        as_root = os.geteuid() == 0
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        subprocess.run([*prefix, *command], check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        # -l: the server's output goes to a file, not to pipes it would hold open.
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                          str(self.sock.parent / "server.log"), "-o",
                          f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1",
                          "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                          "stop")

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create(self, database: str) -> str:
        engine = sa.create_engine(self.url("postgres").replace("postgresql:",
                                                               "postgresql+psycopg:"),
                                  isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {database}")
        engine.dispose()
        return self.url(database)

    def images_stored(self, url: str) -> int:
        try:
            engine = sa.create_engine(url.replace("postgresql:", "postgresql+psycopg:"))
            with engine.connect() as conn:
                return int(conn.exec_driver_sql("SELECT count(*) FROM image").scalar())
        except sa.exc.SQLAlchemyError:
            return 0
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def server():
    # Not under pytest's temporary folder: the server runs as the postgres user, who
    # cannot enter root's private folders.
    folder = Path(tempfile.mkdtemp(prefix="trapline-pg-"))
    try:
        server = PrivateServer(folder)
    except (subprocess.CalledProcessError, OSError) as exc:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"cannot start a private PostgreSQL server: {exc}")
    yield server
    try:
        server.stop()
    except subprocess.CalledProcessError:
        pass
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def series(tmp_path_factory):
    return write_series(SimulationConfig(seed=7, epochs=16, bands=1, size=192, n_steady=12,
                                         n_variable=2, n_transient=2, n_fading=1),
                        tmp_path_factory.mktemp("series"))


def _config(outage_s: float) -> PipelineConfig:
    config = PipelineConfig()
    config.run.workers = 1
    config.run.storage_outage_s = outage_s
    # Streamed images not kept (a PostgreSQL run would keep them in the working folder).
    config.run.live_image_dir = "none"
    return config


def _outage_after(server: PrivateServer, url: str, images: int, seconds: float) -> threading.Thread:
    """Stop the server once ``images`` are stored, start it ``seconds`` later."""
    def run() -> None:
        deadline = time.monotonic() + 120
        while server.images_stored(url) < images and time.monotonic() < deadline:
            time.sleep(0.05)
        server.stop()
        time.sleep(seconds)
        server.start()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_database_outage_is_waited_out_and_nothing_is_lost(server, series):
    reference = server.create("reference")
    run_files([str(series.out_dir)], reference, _config(60.0))
    url = server.create("outage")
    outage = _outage_after(server, url, images=5, seconds=6.0)
    start = time.monotonic()
    summary = run_files([str(series.out_dir)], url, _config(60.0))
    outage.join(30)
    assert not summary.failed and summary.accepted == len(series.images)
    assert time.monotonic() - start > 6.0  # it did wait
    assert_same_run(reference, url)


def test_an_outage_past_the_limit_stops_cleanly_and_the_rerun_is_exact(server, series):
    reference = server.create("reference2")
    run_files([str(series.out_dir)], reference, _config(60.0))
    url = server.create("stopped")
    outage = _outage_after(server, url, images=5, seconds=12.0)
    summary = run_files([str(series.out_dir)], url, _config(2.0))
    outage.join(60)
    assert summary.failed and summary.stopped and "run again to resume" in summary.stopped
    stored = server.images_stored(url)
    assert 5 <= stored < len(series.images)
    again = run_files([str(series.out_dir)], url, _config(60.0))
    assert not again.failed and again.skipped == stored
    assert_same_run(reference, url)


def test_a_database_outage_during_listen_loses_nothing(server):
    """``trapline listen`` during a database outage: the driver holds the timestep it is
    storing, the listener queues (and spools) the ones that keep coming; when the server
    is back every image is stored, none dropped."""
    from helpers import stream_through

    from trapline.run import LiveProcessor

    sim = SimulationConfig(seed=9, epochs=24, bands=1, size=128, n_steady=6, n_variable=1,
                           n_transient=1, n_fading=0)
    reference = server.create("live_reference")
    stream_through(LiveProcessor(reference, _config(60.0)), sim)
    url = server.create("live_outage")
    outage = _outage_after(server, url, images=4, seconds=6.0)
    metrics = stream_through(LiveProcessor(url, _config(60.0)), sim)
    outage.join(30)
    assert metrics.images_processed == sim.epochs and not metrics.processing_errors
    assert sum(metrics.dropped.values()) == 0
    assert server.images_stored(url) == sim.epochs
    assert_same_run(reference, url)
