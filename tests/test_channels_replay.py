"""A database-writer consumer on Redis killed mid-stream and restarted misses nothing
and duplicates nothing: the database ends identical to writing every result once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from channels_data import simulated_results, tables
from helpers import REDIS_URL

from trapline.channels import RESULTS, publish_result
from trapline.storage import Store

# The consumer process: the DB writer in a plug-in host, reading the results channel.
# CRASH_AFTER=k: exit abruptly right after the k-th database write, before its ack.
# DELAY_S: sleep after each write (before the ack), so that a kill lands mid-stream.
CONSUMER = """
import os, sys, threading, time
from trapline.channels.redis import RedisBroker
from trapline.plugins import PluginHost
from trapline.plugins.dbwriter import DBWriter

prefix, db_url, name = sys.argv[1:4]
crash_after = int(os.environ.get("CRASH_AFTER", "0"))
delay = float(os.environ.get("DELAY_S", "0"))

class Writer(DBWriter):
    def write(self, result, state):
        out = super().write(result, state)
        if crash_after and self.written == crash_after:
            os._exit(3)
        time.sleep(delay)
        return out

broker = RedisBroker("redis://127.0.0.1:6379/0", prefix=prefix, claim_idle_s=0.5)
host = PluginHost(broker, [Writer(db_url)], consumer=name, batch=4)
stop = threading.Event()
def idle_exit():
    # stop once everything published is handled and nothing is pending
    while not stop.is_set():
        p = broker.pending("results", host.plugins[0].group)
        done = broker.client.xinfo_groups(broker.key("results"))[0]
        if p.count == 0 and done.get("lag", 1) == 0:
            stop.set()
        time.sleep(0.1)
threading.Thread(target=idle_exit, daemon=True).start()
host.run(stop, idle_s=0.05)
host.close()
"""


def _consumer(tmp_path, prefix: str, db_url: str, name: str, **env: str) -> subprocess.Popen:
    script = tmp_path / "consumer.py"
    script.write_text(CONSUMER)
    return subprocess.Popen([sys.executable, str(script), prefix, db_url, name],
                            env={**os.environ, **env})


def _publish_all(prefix: str) -> int:
    from trapline.channels.redis import RedisBroker

    with RedisBroker(REDIS_URL, prefix=prefix) as broker:
        for result, state in simulated_results():
            publish_result(broker, result, headers={"state": _json(state)}, channels=(RESULTS,))
    return len(simulated_results())


def _json(state) -> str:
    import json

    return json.dumps(state)


def _expected(tmp_path) -> dict[str, pd.DataFrame]:
    url = f"sqlite:///{tmp_path / 'expected.sqlite'}"
    with Store(url) as store:
        store.upgrade()
        for result, state in simulated_results():
            store.write(result, state=state)
    return tables(url)


def _stored_images(url: str) -> int:
    try:
        with Store(url) as store:
            from sqlalchemy import text

            with store.engine.connect() as conn:
                return int(conn.execute(text("select count(*) from image")).scalar())
    except Exception:  # noqa: BLE001 - not created yet
        return 0


def _assert_same_database(url: str, expected: dict[str, pd.DataFrame]) -> None:
    got = tables(url)
    assert len(got["images"]) == len(simulated_results())
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(got[name], frame, obj=name)


@pytest.mark.parametrize("restart_as", ["same", "other"])
def test_consumer_crashing_between_write_and_ack(tmp_path, redis_prefix, restart_as):
    """The worst moment: the image is written, the ack never sent. The restarted
    consumer (same name: replays its pending; other name: claims them after the idle
    time) gets it again and the store's per-image idempotence drops the duplicate."""
    expected = _expected(tmp_path)
    url = f"sqlite:///{tmp_path / 'consumer.sqlite'}"
    n = _publish_all(redis_prefix)
    first = _consumer(tmp_path, redis_prefix, url, "writer-1", CRASH_AFTER="5")
    assert first.wait(120) == 3  # died after writing 5 images
    assert _stored_images(url) == 5
    name = "writer-1" if restart_as == "same" else "writer-2"
    second = _consumer(tmp_path, redis_prefix, url, name)
    assert second.wait(120) == 0
    _assert_same_database(url, expected)
    assert n == 16


def test_consumer_killed_mid_stream(tmp_path, redis_prefix):
    """SIGKILL at an arbitrary moment while images are being written and acked."""
    expected = _expected(tmp_path)
    url = f"sqlite:///{tmp_path / 'consumer.sqlite'}"
    _publish_all(redis_prefix)
    first = _consumer(tmp_path, redis_prefix, url, "writer-1", DELAY_S="0.15")
    deadline = time.monotonic() + 120
    while _stored_images(url) < 4 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.02)
    first.send_signal(signal.SIGKILL)
    first.wait(30)
    assert 4 <= _stored_images(url) < len(simulated_results())
    second = _consumer(tmp_path, redis_prefix, url, "writer-1")
    assert second.wait(120) == 0
    _assert_same_database(url, expected)
