"""Broker outages and consumer groups, on a private redis-server of the test's own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

import trapline.api
from trapline.simulate import SimulationConfig, write_series

redis = pytest.importorskip("redis")

# The source of the imported package (this checkout's, or whatever PYTHONPATH names).
SRC = str(Path(trapline.api.__file__).resolve().parents[1])


def trapline_cli(*args: str) -> subprocess.Popen:
    """``trapline ARGS`` in a process of its own (this checkout's source first)."""
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.Popen([sys.executable, "-m", "trapline.cli", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def series(tmp_path: Path, epochs: int) -> Path:
    sim = SimulationConfig(seed=11, epochs=epochs, bands=1, size=128, n_steady=6,
                           n_variable=1, n_transient=1, n_fading=0)
    return write_series(sim, tmp_path / "series").out_dir


def wait_for(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def test_outage_mid_run_loses_nothing(tmp_path, private_redis):
    """Redis stopped for 3 s in the middle of ``trapline run --broker`` with ``trapline
    consume --plugin parquet`` running: neither crashes, and every image with
    measurements reaches the archive exactly once."""
    files = series(tmp_path, 40)
    broker = f"{private_redis.url}?prefix=outage"
    db = f"sqlite:///{tmp_path / 'run.sqlite'}"
    archive = tmp_path / "archive"
    consumer = trapline_cli("consume", "--broker", broker, "--plugin",
                            f"parquet:directory={archive}")
    producer = trapline_cli("run", str(files), "--db", db, "--workers", "0",
                            "--no-progress", "--broker", broker)
    try:
        _outage_then_check(private_redis, producer, consumer, db, archive)
    finally:
        for process in (producer, consumer):  # none left behind when a check fails
            if process.poll() is None:
                process.kill()
                process.wait()


def _outage_then_check(private_redis, producer, consumer, db, archive) -> None:
    client = redis.Redis(port=private_redis.port)
    wait_for(lambda: client.exists("outage:results") and client.xlen("outage:results") >= 3,
             60, "the first results on the broker")
    private_redis.stop()
    time.sleep(3)
    private_redis.start()
    out, err = producer.communicate(timeout=120)
    assert producer.returncode == 0, err
    assert "Traceback" not in err
    stored = trapline.api.open(db)
    expected = stored.measurements()
    n_images = expected.image_id.nunique()
    wait_for(lambda: len(list(archive.rglob("*.parquet"))) >= n_images, 60,
             "the consumer to archive every image")
    time.sleep(0.5)  # anything more would be a duplicate: give it the chance to show
    consumer.send_signal(signal.SIGTERM)
    _, consumer_err = consumer.communicate(timeout=30)
    assert consumer.returncode == 0, consumer_err
    assert "Traceback" not in consumer_err
    archived = pd.concat(pd.read_parquet(p) for p in archive.rglob("*.parquet"))
    assert archived.image_key.nunique() == n_images
    assert len(archived) == len(expected)  # one file per image: no rows twice
    assert "unreachable" in consumer_err  # the outage was seen and said


def test_dbwriters_to_other_databases_each_get_every_image(tmp_path, private_redis):
    """``trapline run --broker`` stores locally; two ``consume --plugin dbwriter`` to two
    other databases each store every image (before, they shared one group and each
    missed what the other took)."""
    files = series(tmp_path, 12)
    broker = f"{private_redis.url}?prefix=groups"
    run_db = tmp_path / "run.sqlite"
    producer = trapline_cli("run", str(files), "--db", str(run_db), "--workers", "0",
                            "--no-progress", "--broker", broker)
    assert producer.wait(120) == 0, producer.stderr.read()
    keys = set(trapline.api.open(str(run_db)).images().image_key)
    assert len(keys) == 12
    for name in ("other.sqlite", "third.sqlite"):
        consumer = trapline_cli("consume", "--broker", broker, "--once",
                                "--plugin", "dbwriter", "--db", str(tmp_path / name))
        assert consumer.wait(120) == 0, consumer.stderr.read()
        assert set(trapline.api.open(str(tmp_path / name)).images().image_key) == keys


def test_dbwriters_to_one_database_share_the_work(tmp_path, private_redis, monkeypatch):
    """Two writers to the same database (named differently) read in one group: each
    image is handled by one of them, and the database gets every image once."""
    from trapline.channels import RESULTS, open_broker
    from trapline.plugins import PluginHost
    from trapline.plugins.dbwriter import DBWriter

    files = series(tmp_path, 8)
    broker_url = f"{private_redis.url}?prefix=same"
    producer = trapline_cli("run", str(files), "--db", str(tmp_path / "run.sqlite"),
                            "--workers", "0", "--no-progress", "--broker", broker_url)
    assert producer.wait(120) == 0, producer.stderr.read()
    monkeypatch.chdir(tmp_path)
    writers = [DBWriter(url="shared.sqlite"), DBWriter(url=f"sqlite:///{tmp_path}/shared.sqlite")]
    with open_broker(broker_url) as broker:
        hosts = [PluginHost(broker, [w], consumer=f"c{i}", batch=1)
                 for i, w in enumerate(writers)]
        assert writers[0].group == writers[1].group
        while sum(host.run_once() for host in hosts):
            pass
        assert writers[0].written > 0 and writers[1].written > 0
        assert writers[0].written + writers[1].written == 8
        assert broker.pending(RESULTS, writers[0].group).count == 0
        for host in hosts:
            host.close()
    assert len(trapline.api.open(str(tmp_path / "shared.sqlite")).images()) == 8


def test_outbox_spools_to_a_file_and_publishes_in_order(tmp_path, private_redis, caplog):
    """Published while the server is down, past the memory part of the buffer: the rest
    goes to a spool file; all are published in order once the server is back."""
    import logging

    from trapline.channels import open_broker

    private_redis.stop()
    url = f"{private_redis.url}?prefix=spool&buffer_mb=0.001&spool_dir={tmp_path / 'out'}"
    with caplog.at_level(logging.WARNING, logger="trapline.channels"):
        broker = open_broker(url)
        ids = [broker.publish("images", {"n": n, "pad": "x" * 100}) for n in range(50)]
        assert set(ids) == {"buffered"}
        assert len(broker.outbox) == 50 and broker.outbox.spooled > 40
        spool = broker.outbox.spool_path
        assert spool is not None and spool.parent == tmp_path / "out" and spool.exists()
        private_redis.start()
        broker._retry_at = 0.0  # don't wait out the backoff in a test
        assert broker.flush()
        assert not spool.exists()
        got = broker.read("images", "check", "c1", count=100)
        assert [m.record["n"] for m in got] == list(range(50))
        broker.close()
    assert "published the 50 buffered messages" in caplog.text


def test_consume_once_with_the_broker_down_says_so(tmp_path, private_redis, capsys):
    """``consume --once`` while Redis is down: one line saying so, exit 1 (not a
    traceback, not a silent success)."""
    from trapline.cli import main

    private_redis.stop()
    rc = main(["consume", "--broker", private_redis.url, "--once", "--plugin",
               f"parquet:directory={tmp_path / 'archive'}"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "unreachable" in out.splitlines()[-1]
