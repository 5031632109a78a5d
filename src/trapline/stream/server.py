"""Reading one connection's messages, and the server that accepts many imagers.

Each connection has its own :class:`FrameReader`, so each detects its own wire format.
A malformed, oversized, truncated or too slow message, or one that does not fit the
memory budget shared by all connections, closes that connection with a logged reason
(and a ``rejected`` count); so do idle connections, and connections past the limit are
refused (see :class:`Guard`). The server and the other connections carry on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from trapline.stream.metrics import StreamMetrics
from trapline.stream.wire import Frame, FrameReader, Limits, ProtocolError

log = logging.getLogger(__name__)

READ_CHUNK = 1 << 18

FrameHandler = Callable[[Frame, str], None]


def peer_name(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    if isinstance(peer, tuple) and len(peer) >= 2:
        return f"{peer[0]}:{peer[1]}"
    return str(peer)


@dataclass(frozen=True)
class Guard:
    """What a connection may take, so that bad senders cannot starve good ones.

    Attributes:
        limits: largest header and pixel payload per message.
        read_timeout_s: longest silence in the middle of a message (0: none).
        message_timeout_s: a message must be complete this long after its first byte,
            however steadily it trickles in (0: no deadline).
        idle_timeout_s: a connection on which no message starts for this long is
            closed (0: never).
        max_buffered_bytes: bytes of messages being received, over all connections
            together (0: no budget); a message whose announced size does not fit is
            refused and its connection closed.
        max_connections: connections served at once by a server; more are refused
            (0: no limit).
    """

    limits: Limits = field(default_factory=Limits)
    read_timeout_s: float = 0.0
    message_timeout_s: float = 0.0
    idle_timeout_s: float = 0.0
    max_buffered_bytes: int = 0
    max_connections: int = 0


async def read_frames(
    reader: asyncio.StreamReader,
    peer: str,
    on_frame: FrameHandler,
    metrics: StreamMetrics,
    guard: Guard | None = None,
) -> str:
    """Read messages until the peer closes or sends something malformed, too slowly or
    too much, or stays idle.

    Returns why the connection ended: ``"closed"``, ``"idle"`` or a protocol error
    reason (already logged and counted). The bytes the current message needs are held
    in ``metrics.bytes_buffered`` (the budget shared by all connections) until it is
    complete or the connection ends.
    """
    guard = guard or Guard()
    frames = FrameReader(guard.limits)
    held = 0  # this connection's share of metrics.bytes_buffered
    since = time.monotonic()  # start of the current message, or of the idle wait
    try:
        while True:
            timeout, expiry = _timeout(guard, frames, time.monotonic() - since)
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
            except TimeoutError:
                if expiry == "idle":
                    metrics.idle_closed += 1
                    log.warning("stream: closing connection %s: no message for %g s",
                                peer, guard.idle_timeout_s)
                    return "idle"
                return _reject(peer, metrics, _expired(expiry, guard, frames))
            except (ConnectionError, OSError) as exc:
                metrics.connection_errors += 1
                log.warning("stream: connection from %s failed: %s", peer, exc)
                return "error"
            try:
                if not data:
                    frames.close()
                    return "closed"
                metrics.bytes_received += len(data)
                was_empty = not frames.buffered
                done = frames.feed(data)
                if was_empty or done or not frames.buffered:
                    since = time.monotonic()  # a message starts, or the idle wait
                for frame in done:
                    metrics.messages_received += 1
                    on_frame(frame, peer)
                held = _hold(metrics, guard, held, frames.pending)
            except ProtocolError as exc:
                return _reject(peer, metrics, exc)
    finally:
        metrics.bytes_buffered -= held


def _timeout(guard: Guard, frames: FrameReader, elapsed: float) -> tuple[float | None, str]:
    """How long the next read may wait (None: forever) and what expires then."""
    if not frames.buffered:
        if guard.idle_timeout_s:
            return max(guard.idle_timeout_s - elapsed, 0.0), "idle"
        return None, "idle"
    waits = []
    if guard.message_timeout_s:
        waits.append((max(guard.message_timeout_s - elapsed, 0.0), "deadline"))
    if guard.read_timeout_s:
        waits.append((guard.read_timeout_s, "silence"))
    return min(waits) if waits else (None, "silence")


def _expired(expiry: str, guard: Guard, frames: FrameReader) -> ProtocolError:
    if expiry == "deadline":
        return ProtocolError(
            "too_slow",
            f"message not complete {guard.message_timeout_s:g} s after its first byte "
            f"({frames.buffered} of {frames.pending} bytes arrived)",
        )
    return ProtocolError(
        "truncated",
        f"no data for {guard.read_timeout_s:g} s in the middle of a message "
        f"({frames.buffered} bytes buffered)",
    )


def _hold(metrics: StreamMetrics, guard: Guard, held: int, need: int) -> int:
    """Take ``need`` bytes of the shared budget in place of ``held``; returns ``need``.

    Raises:
        ProtocolError: ``memory_budget`` when a larger message does not fit.
    """
    total = metrics.bytes_buffered - held + need
    if need > held and guard.max_buffered_bytes and total > guard.max_buffered_bytes:
        raise ProtocolError(
            "memory_budget",
            f"a message of {need} bytes would take the bytes being received over all "
            f"connections to {total}, over the budget of {guard.max_buffered_bytes}",
        )
    metrics.bytes_buffered = total
    return need


def _reject(peer: str, metrics: StreamMetrics, exc: ProtocolError) -> str:
    metrics.rejected[exc.reason] += 1
    log.warning("stream: closing connection %s (%s): %s", peer, exc.reason, exc)
    return exc.reason


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except (ConnectionError, OSError):
        pass


async def handle_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_frame: FrameHandler,
    metrics: StreamMetrics,
    guard: Guard | None = None,
) -> str:
    """Serve one connection to the end and close it; returns why it ended."""
    peer = peer_name(writer)
    metrics.connections_opened += 1
    log.info("stream: connection from %s", peer)
    try:
        why = await read_frames(reader, peer, on_frame, metrics, guard)
    finally:
        metrics.connections_closed += 1
        await _close(writer)
    log.info("stream: connection %s ended (%s)", peer, why)
    return why


async def start_server(
    host: str,
    port: int,
    on_frame: FrameHandler,
    metrics: StreamMetrics,
    guard: Guard | None = None,
) -> asyncio.Server:
    """Accept imagers on ``host:port`` (0: any free port; see ``server.sockets``); past
    ``guard.max_connections`` served at once, a new connection is closed at once."""
    guard = guard or Guard()
    served = 0

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal served
        if guard.max_connections and served >= guard.max_connections:
            metrics.connections_refused += 1
            log.warning("stream: refusing connection from %s: %d connections open "
                        "(the limit)", peer_name(writer), served)
            await _close(writer)
            return
        served += 1
        try:
            await handle_connection(reader, writer, on_frame, metrics, guard)
        finally:
            served -= 1

    return await asyncio.start_server(handle, host, port, limit=READ_CHUNK)


def bound_port(server: asyncio.Server) -> int:
    """The port a started server listens on."""
    return int(server.sockets[0].getsockname()[1])


async def start_metrics_server(host: str, port: int, render: Callable[[], str]) -> asyncio.Server:
    """A tiny HTTP endpoint: ``GET /metrics`` returns ``render()`` as Prometheus text."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5.0)
            parts = request.split(b" ", 2)
            path = parts[1].decode("ascii", "replace") if len(parts) > 1 else ""
            if parts[0] == b"GET" and path.split("?")[0] in ("/metrics", "/"):
                body, status = render().encode(), "200 OK"
            else:
                body, status = b"not found\n", "404 Not Found"
            writer.write(
                f"HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            await writer.drain()
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            asyncio.LimitOverrunError,
            ConnectionError,
            OSError,
        ):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, host, port)
