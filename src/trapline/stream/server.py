"""Reading one connection's messages, and the server that accepts many imagers.

Each connection has its own :class:`FrameReader`, so each detects its own wire format.
A malformed, oversized or truncated message closes that connection with a logged
reason (and a ``rejected`` count); the server and the other connections carry on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

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


async def read_frames(
    reader: asyncio.StreamReader,
    peer: str,
    on_frame: FrameHandler,
    metrics: StreamMetrics,
    limits: Limits | None = None,
    read_timeout_s: float = 0.0,
) -> str:
    """Read messages until the peer closes or sends something malformed.

    Returns why the connection ended: ``"closed"`` or a protocol error reason (already
    logged and counted). ``read_timeout_s`` applies only in the middle of a message.
    """
    frames = FrameReader(limits)
    while True:
        timeout = read_timeout_s if (read_timeout_s and frames.buffered) else None
        try:
            data = await asyncio.wait_for(reader.read(READ_CHUNK), timeout)
        except TimeoutError:
            return _reject(
                peer,
                metrics,
                ProtocolError(
                    "truncated",
                    f"no data for {read_timeout_s:g} s in the middle of a message "
                    f"({frames.buffered} bytes buffered)",
                ),
            )
        except (ConnectionError, OSError) as exc:
            metrics.connection_errors += 1
            log.warning("stream: connection from %s failed: %s", peer, exc)
            return "error"
        try:
            if not data:
                frames.close()
                return "closed"
            metrics.bytes_received += len(data)
            for frame in frames.feed(data):
                metrics.messages_received += 1
                on_frame(frame, peer)
        except ProtocolError as exc:
            return _reject(peer, metrics, exc)


def _reject(peer: str, metrics: StreamMetrics, exc: ProtocolError) -> str:
    metrics.rejected[exc.reason] += 1
    log.warning("stream: closing connection %s (%s): %s", peer, exc.reason, exc)
    return exc.reason


async def handle_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    on_frame: FrameHandler,
    metrics: StreamMetrics,
    limits: Limits | None = None,
    read_timeout_s: float = 0.0,
) -> str:
    """Serve one connection to the end and close it; returns why it ended."""
    peer = peer_name(writer)
    metrics.connections_opened += 1
    log.info("stream: connection from %s", peer)
    try:
        why = await read_frames(reader, peer, on_frame, metrics, limits, read_timeout_s)
    finally:
        metrics.connections_closed += 1
        writer.close()
        try:
            await writer.wait_closed()
        except (ConnectionError, OSError):
            pass
    log.info("stream: connection %s ended (%s)", peer, why)
    return why


async def start_server(
    host: str,
    port: int,
    on_frame: FrameHandler,
    metrics: StreamMetrics,
    limits: Limits | None = None,
    read_timeout_s: float = 0.0,
) -> asyncio.Server:
    """Accept imagers on ``host:port`` (0: any free port; see ``server.sockets``)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await handle_connection(reader, writer, on_frame, metrics, limits, read_timeout_s)

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
