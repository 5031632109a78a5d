"""Client mode: connect to imagers that serve images, reconnecting with backoff."""

from __future__ import annotations

import asyncio
import logging
import random

from trapline.stream.metrics import StreamMetrics
from trapline.stream.server import READ_CHUNK, FrameHandler, Guard, handle_connection

log = logging.getLogger(__name__)


def backoff_delays(initial_s: float, max_s: float):
    """Exponential backoff: initial, 2x, 4x ... capped at ``max_s``, with +-20 % jitter."""
    delay = initial_s
    while True:
        yield delay * random.uniform(0.8, 1.2)
        delay = min(delay * 2.0, max_s)


async def connect_loop(
    host: str,
    port: int,
    on_frame: FrameHandler,
    metrics: StreamMetrics,
    guard: Guard | None = None,
    initial_s: float = 0.5,
    max_s: float = 30.0,
    connect_timeout_s: float = 10.0,
) -> None:
    """Keep a connection to ``host:port`` open until cancelled.

    After a refused or failed attempt, or when the imager closes the connection (also
    after a protocol error), wait and reconnect; the wait doubles after each failure
    and resets once a connection delivered data.
    """
    delays = backoff_delays(initial_s, max_s)
    while True:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=READ_CHUNK), connect_timeout_s
            )
        except (OSError, TimeoutError) as exc:
            metrics.connection_errors += 1
            delay = next(delays)
            log.warning(
                "stream: cannot connect to %s:%d (%s); retrying in %.1f s", host, port, exc, delay
            )
            await asyncio.sleep(delay)
            continue
        log.info("stream: connected to %s:%d", host, port)
        before = metrics.messages_received
        await handle_connection(reader, writer, on_frame, metrics, guard)
        if metrics.messages_received > before:
            delays = backoff_delays(initial_s, max_s)
        delay = next(delays)
        log.info("stream: reconnecting to %s:%d in %.1f s", host, port, delay)
        await asyncio.sleep(delay)
