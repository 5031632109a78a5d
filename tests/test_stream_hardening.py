"""Bad senders cannot starve good ones (real sockets on 127.0.0.1): a per-message
deadline cuts a trickling sender, a connection limit refuses extra connections, idle
connections are closed, and a memory budget over all connections refuses messages that
do not fit; each is logged and counted on /metrics while good senders are served."""

from __future__ import annotations

import argparse
import asyncio
import logging
import struct
import time

from test_stream_listen import Collect, started, until

from trapline.simulate import SimulationConfig
from trapline.stream import MAGIC, Listener, StreamConfig, encode, simulated_timesteps

SIM = SimulationConfig(
    seed=2, size=64, epochs=4, bands=1, n_steady=3, n_variable=0, n_transient=0, n_fading=0
)
GOOD = [step[0] for step in simulated_timesteps(SIM)]


def config(**kw) -> StreamConfig:
    return StreamConfig(port=0, bands=1, max_wait_s=0.1, log_every_s=0, **kw)


async def connect(listener: Listener):
    return await asyncio.open_connection("127.0.0.1", listener.ports[0])


async def send_good(listener: Listener, images=GOOD, pause_s: float = 0.05) -> None:
    _, w = await connect(listener)
    for image in images:
        w.write(encode(image, "gijs"))
        await w.drain()
        await asyncio.sleep(pause_s)
    w.close()
    await w.wait_closed()


async def closed_within(reader: asyncio.StreamReader, timeout_s: float) -> float:
    """Seconds until the listener closes the connection (EOF or reset)."""
    t0 = time.monotonic()
    try:
        assert await asyncio.wait_for(reader.read(1), timeout_s) == b""
    except ConnectionResetError:
        pass
    return time.monotonic() - t0


async def metrics_page(listener: Listener) -> str:
    r, w = await asyncio.open_connection("127.0.0.1", listener.metrics_port)
    w.write(b"GET /metrics HTTP/1.0\r\n\r\n")
    page = (await r.read()).decode()
    w.close()
    return page


def test_slow_loris_is_cut_at_the_message_deadline_while_good_images_arrive(caplog):
    message = encode(GOOD[0], "gijs")

    async def main():
        collect = Collect()
        # One byte every 20 ms never trips the 5 s silence timeout; the deadline does.
        listener = Listener(config(message_timeout_s=0.5, read_timeout_s=5.0), collect)
        task = await started(listener)
        reader, slow = await connect(listener)

        async def trickle() -> None:
            for i in range(len(message)):
                try:
                    slow.write(message[i : i + 1])
                    await slow.drain()
                except ConnectionError:
                    return
                await asyncio.sleep(0.02)

        t0 = time.monotonic()
        trickler = asyncio.create_task(trickle())
        good = asyncio.create_task(send_good(listener, pause_s=0.2))
        cut_after = await closed_within(reader, 5.0)
        await good
        await until(lambda: len(collect.steps) == len(GOOD))
        trickler.cancel()
        slow.close()
        listener.stop()
        return await task, cut_after, time.monotonic() - t0

    with caplog.at_level(logging.WARNING, logger="trapline.stream"):
        metrics, cut_after, _ = asyncio.run(main())
    assert 0.4 < cut_after < 1.5
    assert metrics.rejected == {"too_slow": 1}
    assert metrics.images_decoded == len(GOOD)
    assert "(too_slow): message not complete 0.5 s after its first byte" in caplog.text
    assert 'trapline_stream_rejected_total{reason="too_slow"} 1' in metrics.prometheus()


def test_connection_limit_refuses_the_extra_one_and_the_others_keep_working(caplog):
    async def main():
        collect = Collect()
        listener = Listener(config(max_connections=2), collect)
        task = await started(listener)
        _, w0 = await connect(listener)
        _, w1 = await connect(listener)
        await until(lambda: listener.metrics.connections_active == 2)
        r2, _ = await connect(listener)
        refused_after = await closed_within(r2, 2.0)
        for n, (image, w) in enumerate(zip(GOOD, [w0, w1, w0, w1], strict=True)):
            w.write(encode(image, "gijs"))
            await w.drain()
            await until(lambda n=n: listener.metrics.images_decoded == n + 1)  # in order
        await until(lambda: len(collect.steps) == len(GOOD))
        w0.close()
        w1.close()
        await until(lambda: listener.metrics.connections_active == 0)
        await send_good(listener, GOOD[:1])  # a place is free again (a late image now)
        await until(lambda: listener.metrics.images_decoded == len(GOOD) + 1)
        listener.stop()
        return await task, refused_after

    with caplog.at_level(logging.WARNING, logger="trapline.stream"):
        metrics, refused_after = asyncio.run(main())
    assert refused_after < 1.0
    assert metrics.connections_refused == 1
    assert "refusing connection" in caplog.text and "2 connections open" in caplog.text
    assert "trapline_stream_connections_refused_total 1" in metrics.prometheus()


def test_idle_connections_are_closed_after_the_idle_timeout(caplog):
    async def main():
        collect = Collect()
        listener = Listener(config(idle_timeout_s=0.3), collect)
        task = await started(listener)
        idle_reader, _ = await connect(listener)
        # A sender with a message every 0.1 s is never idle, for longer than 0.3 s.
        busy = asyncio.create_task(send_good(listener, GOOD, pause_s=0.15))
        idle_after = await closed_within(idle_reader, 3.0)
        await busy
        await until(lambda: len(collect.steps) == len(GOOD))
        listener.stop()
        return await task, idle_after

    with caplog.at_level(logging.WARNING, logger="trapline.stream"):
        metrics, idle_after = asyncio.run(main())
    assert 0.25 < idle_after < 1.5
    assert metrics.idle_closed == 1 and metrics.images_decoded == len(GOOD)
    assert "no message for 0.3 s" in caplog.text
    assert "trapline_stream_idle_closed_total 1" in metrics.prometheus()


def test_memory_budget_refuses_messages_that_do_not_fit_over_all_connections(caplog):
    pixels = 400 * 1024  # announced by each hoarder, which then sends only its prefix
    hoard = struct.pack("<QII", MAGIC, 2880, pixels).ljust(512, b"\0") + b"SIMPLE  =" * 10
    need = 512 + 2880 + pixels

    async def main():
        collect = Collect()
        listener = Listener(config(max_buffered_mb=1.0, metrics_port=0), collect)
        task = await started(listener)
        hoarders = []
        for n in range(3):
            r, w = await connect(listener)
            w.write(hoard)
            await w.drain()
            hoarders.append((r, w))
            if n < 2:  # each holds its announced size of the 1 MiB budget
                await until(lambda n=n: listener.metrics.bytes_buffered == (n + 1) * need)
        held = listener.metrics.bytes_buffered
        third_after = await closed_within(hoarders[2][0], 2.0)
        await send_good(listener, GOOD[:2])  # fits beside the two hoarders
        await until(lambda: len(collect.steps) == 2)
        page = await metrics_page(listener)
        for _, w in hoarders[:2]:
            w.close()
        await until(lambda: listener.metrics.bytes_buffered == 0)
        await send_good(listener, GOOD[2:])  # and afterwards
        await until(lambda: len(collect.steps) == len(GOOD))
        listener.stop()
        return await task, held, third_after, page

    with caplog.at_level(logging.WARNING, logger="trapline.stream"):
        metrics, held, third_after, page = asyncio.run(main())
    assert held == 2 * need
    assert third_after < 1.0
    assert metrics.rejected["memory_budget"] == 1
    assert metrics.images_decoded == len(GOOD)
    assert f"(memory_budget): a message of {need} bytes" in caplog.text
    assert 'trapline_stream_rejected_total{reason="memory_budget"} 1' in page
    assert f"trapline_stream_bytes_buffered {2 * need}" in page
    assert "# TYPE trapline_stream_bytes_buffered gauge" in page
    for name in ("connections_refused_total 0", "idle_closed_total 0"):
        assert f"trapline_stream_{name}" in page


def test_listen_flags_set_the_guards():
    from trapline.commands import listen

    p = argparse.ArgumentParser()
    listen.configure(p)
    args = p.parse_args(["--max-connections", "5", "--idle-timeout-s", "2.5",
                         "--message-timeout-s", "1.5", "--max-buffered-mb", "3"])
    assert (args.max_connections, args.idle_timeout_s, args.message_timeout_s,
            args.max_buffered_mb) == (5, 2.5, 1.5, 3.0)
    defaults = p.parse_args([])
    cfg = StreamConfig()
    guard = StreamConfig(max_buffered_mb=defaults.max_buffered_mb).guard
    assert defaults.max_connections == cfg.max_connections
    assert guard.max_buffered_bytes == int(cfg.max_buffered_mb * 2**20)
