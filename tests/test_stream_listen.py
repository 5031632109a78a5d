"""The live listener over real sockets on 127.0.0.1: both wire formats end to end into
SQLite, pixel order of non-square images, bad connections, queue overload, client mode."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import re
import socket
import struct
import threading
import time

import numpy as np
import pytest
from astropy.wcs import WCS
from helpers import wait_until_accepting

import trapline.api
from trapline.image import Beam, Image
from trapline.run import LiveProcessor
from trapline.simulate import SimulationConfig
from trapline.stream import (
    MAGIC,
    Listener,
    StreamConfig,
    encode,
    send_timesteps,
    simulated_timesteps,
)

SIM = SimulationConfig(
    seed=3, size=64, epochs=3, bands=2, n_steady=4, n_variable=0, n_transient=0, n_fading=0
)


class Collect:
    """A processor that keeps the timesteps (optionally slowly)."""

    def __init__(self, delay_s: float = 0.0):
        self.steps = []
        self.delay_s = delay_s

    def __call__(self, step) -> None:
        time.sleep(self.delay_s)
        self.steps.append(step)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(cond, timeout_s: float = 10.0) -> None:
    end = time.monotonic() + timeout_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.02)


async def started(listener: Listener) -> asyncio.Task:
    task = asyncio.create_task(listener.run())
    await asyncio.wait_for(listener.started.wait(), 10)
    return task


def test_listen_command_gijs_end_to_end_into_sqlite(tmp_path):
    """``trapline simulate --stream`` -> ``trapline listen --db`` -> trapline.api.open."""
    from trapline.commands import listen, simulate

    db = tmp_path / "live.sqlite"
    port = free_port()
    lp = argparse.ArgumentParser()
    listen.configure(lp)
    largs = lp.parse_args(
        [
            "--port",
            str(port),
            "--db",
            str(db),
            "--bands",
            "2",
            "--max-wait-s",
            "1",
            "--duration-s",
            "4",
            "--metrics-every-s",
            "0",
        ]
    )
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", listen.run(largs)))
    thread.start()
    wait_until_accepting(port, 10)
    sp = argparse.ArgumentParser()
    simulate.configure(sp)
    sargs = sp.parse_args(
        [
            "--stream",
            f"127.0.0.1:{port}",
            "--stream-format",
            "gijs",
            "--stream-cadence-s",
            "0.05",
            "--seed",
            "3",
            "--size",
            "64",
            "--epochs",
            "3",
            "--bands",
            "2",
            "--n-steady",
            "4",
            "--n-variable",
            "0",
            "--n-transient",
            "0",
            "--n-fading",
            "0",
        ]
    )
    assert simulate.run(sargs) == 0
    thread.join(20)
    assert result["rc"] == 0
    with trapline.api.open(str(db)) as run:
        images = run.images()
        assert len(images) == 6
        assert images["freq_hz"].nunique() == 2
        assert len(run.sources()) >= 3


def test_fits_format_end_to_end_into_sqlite(tmp_path):
    db = tmp_path / "fits.sqlite"

    async def main():
        processor = LiveProcessor(str(db))
        listener = Listener(StreamConfig(port=0, bands=2, log_every_s=0), processor)
        task = await started(listener)
        sent = await send_timesteps(
            "127.0.0.1", listener.ports[0], simulated_timesteps(SIM), "fits"
        )
        await until(lambda: listener.metrics.images_processed == sent)
        listener.stop()
        return await task

    metrics = asyncio.run(main())
    assert metrics.timesteps_complete == 3 and metrics.timesteps_partial == 0
    assert not metrics.rejected and not metrics.dropped
    with trapline.api.open(str(db)) as run:
        assert len(run.images()) == 6
        assert len(run.sources()) >= 3


def source_image(nx=200, ny=120, x0=163.0, y0=21.0, flux=1.0, seed=0) -> Image:
    """A non-square noise image with one point source at pixel (x0, y0)."""
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---SIN", "DEC--SIN"]
    wcs.wcs.crval = [150.0, 30.0]
    wcs.wcs.crpix = [nx / 2 + 1, ny / 2 + 1]
    wcs.wcs.cdelt = [-0.01, 0.01]
    beam = Beam(0.04, 0.03, 0.0)  # FWHM 4 x 3 pixels
    y, x = np.mgrid[0:ny, 0:nx]
    sx, sy = 3.0 / 2.3548, 4.0 / 2.3548  # major axis north (PA 0) = along y
    data = flux * np.exp(-0.5 * (((x - x0) / sx) ** 2 + ((y - y0) / sy) ** 2))
    data += np.random.default_rng(seed).normal(0, 0.005, data.shape)
    return Image(data.astype(np.float32), wcs, beam, 61000.0, 60e6, integration_s=1.0)


@pytest.mark.parametrize("fmt", ["gijs", "fits"])
def test_asymmetric_image_source_found_at_its_position(tmp_path, fmt):
    image = source_image()
    ra, dec = image.pixel_to_sky(163.0, 21.0)
    db = tmp_path / f"asym_{fmt}.sqlite"

    async def main():
        listener = Listener(
            StreamConfig(port=0, bands=1, log_every_s=0), LiveProcessor(str(db))
        )
        task = await started(listener)
        await send_timesteps("127.0.0.1", listener.ports[0], [[image]], fmt)
        await until(lambda: listener.metrics.images_processed == 1)
        listener.stop()
        await task

    asyncio.run(main())
    with trapline.api.open(str(db)) as run:
        images = run.images()
        sources = run.sources()
    assert len(images) == 1
    assert len(sources) == 1
    dra = (sources["ra"].iloc[0] - float(ra)) * np.cos(np.radians(float(dec)))
    ddec = sources["dec"].iloc[0] - float(dec)
    assert np.hypot(dra, ddec) < 0.003  # well under a pixel (0.01 deg)


def test_bad_connections_are_closed_with_a_reason_and_others_carry_on(caplog):
    good = list(simulated_timesteps(SIM))

    async def send_raw(port: int, payload: bytes) -> None:
        _, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(payload)
        await w.drain()
        w.close()
        await w.wait_closed()

    async def main():
        collect = Collect()
        listener = Listener(StreamConfig(port=0, bands=2, max_wait_s=0.3, log_every_s=0), collect)
        task = await started(listener)
        port = listener.ports[0]
        # The good sender stays connected while the bad ones come and go.
        _, w0 = await asyncio.open_connection("127.0.0.1", port)
        _, w1 = await asyncio.open_connection("127.0.0.1", port)
        w0.write(encode(good[0][0], "gijs"))
        w1.write(encode(good[0][1], "fits"))
        await send_raw(port, b"\x00garbage that is no image at all" * 10)
        await send_raw(port, encode(good[1][0], "gijs")[:3000])  # truncated
        await send_raw(port, struct.pack("<QII", MAGIC, 2880, 0xFFFFFFF0).ljust(512, b"\0"))
        await send_raw(port, encode(good[1][0], "fits")[:4000])  # truncated FITS
        for step in good[1:]:
            w0.write(encode(step[0], "gijs"))
            w1.write(encode(step[1], "fits"))
        await w0.drain()
        await w1.drain()
        await until(lambda: len(collect.steps) == 3)
        w0.close()
        w1.close()
        listener.stop()
        return collect, await task

    with caplog.at_level(logging.WARNING, logger="trapline.stream"):
        collect, metrics = asyncio.run(main())
    assert metrics.rejected == {"unknown_format": 1, "truncated": 2, "oversized": 1}
    assert [s.n_bands for s in collect.steps] == [2, 2, 2]
    assert metrics.images_decoded == 6 and metrics.timesteps_complete == 3
    text = caplog.text
    for reason in ("unknown_format", "truncated", "oversized"):
        assert f"({reason})" in text


def test_partial_timestep_is_processed_after_the_wait_over_sockets():
    step = next(simulated_timesteps(SIM))

    async def main():
        collect = Collect()
        listener = Listener(StreamConfig(port=0, bands=2, max_wait_s=0.3, log_every_s=0), collect)
        task = await started(listener)
        _, w = await asyncio.open_connection("127.0.0.1", listener.ports[0])
        w.write(encode(step[0], "gijs"))  # only one of two bands, and nothing after it
        await w.drain()
        t0 = time.monotonic()
        await until(lambda: collect.steps, 5)
        waited = time.monotonic() - t0
        w.close()
        listener.stop()
        await task
        return collect, waited, listener.metrics

    collect, waited, metrics = asyncio.run(main())
    assert 0.2 < waited < 2.0
    assert metrics.timesteps_partial == 1 and collect.steps[0].n_bands == 1


def test_queue_overload_drops_oldest_and_counts_it(caplog):
    sim = SimulationConfig(
        seed=1, size=32, epochs=8, bands=1, n_steady=1, n_variable=0, n_transient=0, n_fading=0
    )

    async def main():
        collect = Collect(delay_s=0.3)
        listener = Listener(
            StreamConfig(port=0, bands=1, max_queue=2, spool_max_mb=0, log_every_s=0,
                         metrics_port=0), collect
        )
        task = await started(listener)
        sent = await send_timesteps("127.0.0.1", listener.ports[0], simulated_timesteps(sim))
        await until(lambda: listener.metrics.images_decoded == sent)
        r, w = await asyncio.open_connection("127.0.0.1", listener.metrics_port)
        w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        page = (await r.read()).decode()
        w.close()
        listener.stop()
        return collect, await task, sent, page

    with caplog.at_level(logging.WARNING, logger="trapline.stream"):
        collect, metrics, sent, page = asyncio.run(main())
    processed = sum(s.n_bands for s in collect.steps)
    assert metrics.dropped["queue_full"] > 0
    assert metrics.timesteps_dropped == metrics.dropped["queue_full"]
    assert processed + metrics.dropped["queue_full"] == sent
    times = [s.time_mjd for s in collect.steps]
    assert times == sorted(times) and collect.steps[-1].time_mjd == max(times)
    assert "queue full" in caplog.text
    assert 'trapline_stream_dropped_total{reason="queue_full"}' in page
    assert "trapline_stream_images_decoded_total 8" in page


class Blocked(Collect):
    """A processor that waits for ``release`` (a pipeline waiting out a database outage)."""

    def __init__(self):
        super().__init__()
        self.release = threading.Event()

    def __call__(self, step) -> None:
        self.release.wait(30)
        super().__call__(step)


async def metrics_page(port: int) -> str:
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
    page = (await r.read()).decode()
    w.close()
    return page


def blocked_run(tmp_path, spool_max_mb: float, epochs: int):
    """``epochs`` timesteps over a socket to a listener (max_queue 2) whose processor
    is blocked until all have arrived; returns what it processed, the metrics, the
    times sent and the metrics page while blocked."""
    sim = SimulationConfig(seed=1, size=32, epochs=epochs, bands=1, n_steady=1,
                           n_variable=0, n_transient=0, n_fading=0)
    steps = list(simulated_timesteps(sim))

    async def main():
        blocked = Blocked()
        listener = Listener(StreamConfig(port=0, bands=1, max_queue=2, log_every_s=0,
                                         metrics_port=0, spool_dir=str(tmp_path / "spool"),
                                         spool_max_mb=spool_max_mb), blocked)
        task = await started(listener)
        sent = await send_timesteps("127.0.0.1", listener.ports[0], steps)
        await until(lambda: listener.metrics.images_decoded == sent
                    and listener.metrics.timesteps_complete == epochs)
        page = await metrics_page(listener.metrics_port)
        blocked.release.set()
        listener.stop()
        return blocked, await task, page

    blocked, metrics, page = asyncio.run(main())
    return blocked.steps, metrics, [s[0].time_mjd for s in steps], page


def test_blocked_processing_spools_to_disk_and_drops_nothing(tmp_path):
    """3x max_queue timesteps arrive while processing is blocked: the ones past the
    queue wait on disk, and every one is processed afterwards, in order."""
    processed, metrics, sent, page = blocked_run(tmp_path, 64.0, epochs=6)
    # (the wire carries times to ~1e-11 d; timesteps are 1e-5 d apart)
    assert [s.images[0].time_mjd for s in processed] == pytest.approx(sent, abs=1e-9)
    assert metrics.timesteps_dropped == 0 and not metrics.dropped
    assert metrics.timesteps_spooled >= 3  # 1 processing (blocked), 2 queued, 3 spooled
    assert "trapline_stream_spool_depth 3" in page
    assert "trapline_stream_timesteps_spooled_total 3" in page
    spool_bytes = int(re.search(r"^trapline_stream_spool_bytes (\d+)$", page, re.M)[1])
    assert spool_bytes > 3 * 32 * 32 * 4  # three images of float32 pixels at least
    assert "spool 0 (0.0 MB, 3 spooled in all)" in metrics.log_line()
    assert not list((tmp_path / "spool").iterdir())  # its files and folder are gone


def test_full_spool_drops_the_oldest_and_counts_it(tmp_path, caplog):
    """A spool with room for about one timestep: the oldest waiting ones are dropped,
    counted and logged; what is processed is in order and ends with the newest."""
    with caplog.at_level(logging.WARNING, logger="trapline.stream"):
        processed, metrics, sent, _ = blocked_run(tmp_path, 0.006, epochs=6)
    times = [s.images[0].time_mjd for s in processed]
    assert metrics.timesteps_dropped > 0
    assert len(times) + metrics.timesteps_dropped == len(sent)
    assert times == sorted(times) and times[-1] == sent[-1]
    assert "spool full" in caplog.text


def test_client_mode_connects_and_reconnects_with_backoff():
    steps = list(simulated_timesteps(SIM))
    port = free_port()

    async def main():
        collect = Collect()
        listener = Listener(
            StreamConfig(
                port=None,
                connect=[("127.0.0.1", port)],
                bands=2,
                max_wait_s=0.3,
                reconnect_initial_s=0.05,
                reconnect_max_s=0.2,
                log_every_s=0,
            ),
            collect,
        )
        task = await started(listener)
        await asyncio.sleep(0.3)  # refused a few times meanwhile
        assert listener.metrics.connection_errors >= 1
        served = []

        async def imager(reader, writer):  # serves one timestep per connection, then closes
            step = steps[len(served)]
            served.append(step)
            for image in step:
                writer.write(encode(image, "gijs"))
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(imager, "127.0.0.1", port)
        await until(lambda: len(collect.steps) >= 2)
        server.close()
        listener.stop()
        await task
        return collect

    collect = asyncio.run(main())
    assert [s.n_bands for s in collect.steps[:2]] == [2, 2]
    assert collect.steps[0].time_mjd < collect.steps[1].time_mjd


def test_stage_latencies_are_timed_and_exported():
    """Per-stage times of every processed timestep: in the metrics, the log line and the
    Prometheus text (summaries with quantiles); a 0.3 s processing shows as such."""
    sim = SimulationConfig(
        seed=1, size=32, epochs=3, bands=1, n_steady=1, n_variable=0, n_transient=0, n_fading=0
    )

    async def main():
        collect = Collect(delay_s=0.3)
        listener = Listener(StreamConfig(port=0, bands=1, log_every_s=0), collect)
        task = await started(listener)
        sent = await send_timesteps("127.0.0.1", listener.ports[0], simulated_timesteps(sim),
                                    cadence_s=0.5)
        await until(lambda: listener.metrics.images_processed == sent)
        listener.stop()
        return await task

    metrics = asyncio.run(main())
    assert metrics.stage_count["processing"] == metrics.stage_count["latency"] == 3
    assert 0.3 <= metrics.quantile("processing", 0.5) < 1.0
    assert metrics.quantile("latency", 0.99) >= metrics.quantile("processing", 0.5)
    text = metrics.prometheus()
    assert 'trapline_stream_processing_seconds{quantile="0.99"}' in text
    assert "trapline_stream_latency_seconds_count 3" in text
    assert "latency p50" in metrics.log_line()


def test_listen_reports_progress_and_closes_with_strict_json(tmp_path):
    """At the default log level ``trapline listen`` logs periodic counts with the
    candidates so far, says how long it listened, and its closing JSON is strict (no
    NaN)."""
    import subprocess
    import sys

    port = free_port()
    db = tmp_path / "live.sqlite"
    proc = subprocess.Popen(
        [sys.executable, "-m", "trapline.cli", "listen", "--port", str(port), "--db", str(db),
         "--bands", "1", "--duration-s", "6", "--metrics-every-s", "0.5", "--no-console"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until_accepting(port, 20, alive=lambda: proc.poll() is None)
    sim = SimulationConfig(seed=3, epochs=3, bands=1, size=64, n_steady=4, n_variable=0,
                           n_transient=0, n_fading=0)
    asyncio.run(send_timesteps("127.0.0.1", port, simulated_timesteps(sim), "gijs"))
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "pipeline: " in err and "candidates: " in err  # periodic progress, default level
    assert "listened for" in out
    closing = out.strip().splitlines()[-1]
    assert closing.startswith("stream: ")

    def reject(constant):
        raise ValueError(f"not strict JSON: {constant}")

    metrics = json.loads(closing[len("stream: "):], parse_constant=reject)
    assert metrics["images_processed"] == 3
