"""Settings of the live image-stream listener.

The settings that are also ``trapline listen`` flags are declared once with
:func:`trapline.options.option` (default, help, check; ``group`` "timestep" or "guard"):
``trapline listen`` adds them with :func:`trapline.options.add_flags`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trapline.errors import ConfigError
from trapline.options import at_least, check_options, non_negative, option
from trapline.stream.server import Guard
from trapline.stream.wire import Limits


@dataclass
class StreamConfig:
    """How ``trapline listen`` receives, assembles and queues images.

    Attributes:
        host: address the server binds (server mode).
        port: port the server listens on; ``None``: no server; 0: any free port.
        connect: imagers to connect to, as ``(host, port)`` (client mode).
        limits: largest header and pixel payload accepted per message.
        read_timeout_s: a connection silent this long in the middle of a message is
            closed (truncated); 0: never.
        reconnect_initial_s, reconnect_max_s: client-mode backoff between attempts
            (doubling from the first to the second).
        metrics_port: port of the Prometheus text endpoint ``/metrics``; ``None``: none.
        metrics_host: address the metrics endpoint binds.
        log_every_s: interval of the metrics log line; 0: never.
        bands, max_wait_s, max_queue, spool_max_mb, spool_dir (timestep assembly) and
            max_connections, idle_timeout_s, message_timeout_s, max_buffered_mb (guards
            against senders that would starve the others,
            :class:`~trapline.stream.server.Guard`): see each field's declared help, also
            that of its ``trapline listen`` flag.
    """

    host: str = "127.0.0.1"
    port: int | None = 6666
    connect: list[tuple[str, int]] = field(default_factory=list)
    bands: int = option(
        0, "images per timestep (one per band); a timestep is processed once all have "
        "arrived", check=non_negative, group="timestep", metavar="N",
        zero="unknown, always wait --max-wait-s")
    max_wait_s: float = option(
        2.0, "longest wait for a timestep's missing bands", check=non_negative,
        group="timestep", metavar="S")
    max_queue: int = option(
        8, "timesteps waiting in memory for processing; more wait in the spool",
        check=at_least(1), group="timestep", metavar="N")
    spool_max_mb: float = option(
        2048.0, "size of the on-disk spool of timesteps past --max-queue (MB); when it is "
        "full too, the oldest waiting timestep is dropped", check=non_negative,
        group="timestep", metavar="MB", zero="no spool")
    spool_dir: str | None = option(
        None, "where timesteps past --max-queue wait while processing is behind (e.g. "
        "waiting out a database outage), in a temporary folder made there",
        group="timestep", metavar="DIR",
        unset="the SQLite database's folder (the working folder for other databases)")
    limits: Limits = field(default_factory=Limits)
    read_timeout_s: float = 30.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_every_s: float = 60.0
    # Guards against senders that would starve the others.
    max_connections: int = option(
        64, "imager connections served at once; more are refused", check=non_negative,
        group="guard", metavar="N", zero="no limit")
    idle_timeout_s: float = option(
        300.0, "close a connection on which no message starts for S seconds",
        check=non_negative, group="guard", metavar="S", zero="never")
    message_timeout_s: float = option(
        60.0, "a message must arrive completely within S seconds of its first byte, "
        "or its connection is closed", check=non_negative, group="guard", metavar="S",
        zero="no deadline")
    max_buffered_mb: float = option(
        2048.0, "memory for messages being received, over all connections together; "
        "a message that does not fit is refused and its connection closed",
        check=non_negative, group="guard", metavar="MB", zero="no limit")

    def __post_init__(self) -> None:
        if self.port is None and not self.connect:
            raise ConfigError("stream: give a port to listen on or imagers to connect to")
        check_options(self, lambda name: f"stream.{name}")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise ConfigError("stream: reconnect backoff must be > 0 and max >= initial")

    @property
    def guard(self) -> Guard:
        """What each connection may take (limits, deadlines, the shared budget)."""
        return Guard(
            limits=self.limits,
            read_timeout_s=self.read_timeout_s,
            message_timeout_s=self.message_timeout_s,
            idle_timeout_s=self.idle_timeout_s,
            max_buffered_bytes=int(self.max_buffered_mb * 2**20),
            max_connections=self.max_connections,
        )


def parse_address(text: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """``HOST:PORT`` (or ``:PORT``, ``PORT``; ``[v6addr]:PORT``) as ``(host, port)``."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or default_host
    try:
        number = int(port)
    except ValueError as exc:
        raise ConfigError(f"{text!r} is not HOST:PORT") from exc
    if not 0 <= number <= 65535:
        raise ConfigError(f"{text!r}: port out of range")
    return host, number
