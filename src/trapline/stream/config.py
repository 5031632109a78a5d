"""Settings of the live image-stream listener."""

from __future__ import annotations

from dataclasses import dataclass, field

from trapline.errors import ConfigError
from trapline.stream.wire import Limits


@dataclass
class StreamConfig:
    """How ``trapline listen`` receives, assembles and queues images.

    Attributes:
        host: address the server binds (server mode).
        port: port the server listens on; ``None``: no server; 0: any free port.
        connect: imagers to connect to, as ``(host, port)`` (client mode).
        bands: images expected per timestep (one per band); 0: unknown, so every
            timestep waits ``max_wait_s``.
        max_wait_s: longest a timestep waits for missing bands after its first image.
        max_queue: assembled timesteps waiting for processing before the oldest is dropped.
        limits: largest header and pixel payload accepted per message.
        read_timeout_s: a connection silent this long in the middle of a message is
            closed (truncated); 0: never.
        reconnect_initial_s, reconnect_max_s: client-mode backoff between attempts
            (doubling from the first to the second).
        metrics_port: port of the Prometheus text endpoint ``/metrics``; ``None``: none.
        metrics_host: address the metrics endpoint binds.
        log_every_s: interval of the metrics log line; 0: never.
    """

    host: str = "127.0.0.1"
    port: int | None = 6666
    connect: list[tuple[str, int]] = field(default_factory=list)
    bands: int = 0
    max_wait_s: float = 2.0
    max_queue: int = 8
    limits: Limits = field(default_factory=Limits)
    read_timeout_s: float = 30.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_every_s: float = 60.0

    def __post_init__(self) -> None:
        if self.port is None and not self.connect:
            raise ConfigError("stream: give a port to listen on or imagers to connect to")
        if self.bands < 0:
            raise ConfigError("stream.bands must be >= 0")
        if self.max_wait_s < 0:
            raise ConfigError("stream.max_wait_s must be >= 0")
        if self.max_queue < 1:
            raise ConfigError("stream.max_queue must be >= 1")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise ConfigError("stream: reconnect backoff must be > 0 and max >= initial")


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
