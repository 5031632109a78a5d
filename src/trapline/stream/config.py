"""Settings of the live image-stream listener."""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from trapline.errors import ConfigError
from trapline.stream.server import Guard
from trapline.stream.wire import Limits


def _option(default: Any, metavar: str, help: str, zero: str) -> Any:
    """A field that is also a command-line flag: its default, metavar, help and what
    0 means."""
    return field(default=default, metadata={"metavar": metavar, "help": help, "zero": zero})



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
        max_queue: assembled timesteps waiting in memory for processing; more go to
            the spool.
        spool_dir: where the on-disk spool of timesteps past ``max_queue`` makes its
            temporary folder; ``None``: the system's temporary folder.
        spool_max_mb: size of the spool (MB); when it is full too, the oldest waiting
            timestep is dropped; 0: no spool.
        limits: largest header and pixel payload accepted per message.
        read_timeout_s: a connection silent this long in the middle of a message is
            closed (truncated); 0: never.
        reconnect_initial_s, reconnect_max_s: client-mode backoff between attempts
            (doubling from the first to the second).
        metrics_port: port of the Prometheus text endpoint ``/metrics``; ``None``: none.
        metrics_host: address the metrics endpoint binds.
        log_every_s: interval of the metrics log line; 0: never.
        max_connections, idle_timeout_s, message_timeout_s, max_buffered_mb: guards
            against senders that would starve the others (see each field's help and
            :class:`~trapline.stream.server.Guard`).
    """

    host: str = "127.0.0.1"
    port: int | None = 6666
    connect: list[tuple[str, int]] = field(default_factory=list)
    bands: int = 0
    max_wait_s: float = 2.0
    max_queue: int = 8
    spool_dir: str | None = None
    spool_max_mb: float = 2048.0
    limits: Limits = field(default_factory=Limits)
    read_timeout_s: float = 30.0
    reconnect_initial_s: float = 0.5
    reconnect_max_s: float = 30.0
    metrics_port: int | None = None
    metrics_host: str = "127.0.0.1"
    log_every_s: float = 60.0
    # Guards against senders that would starve the others; also `trapline listen` flags.
    max_connections: int = _option(
        64, "N", "imager connections served at once; more are refused", "no limit"
    )
    idle_timeout_s: float = _option(
        300.0, "S", "close a connection on which no message starts for S seconds", "never"
    )
    message_timeout_s: float = _option(
        60.0, "S", "a message must arrive completely within S seconds of its first byte, "
        "or its connection is closed", "no deadline"
    )
    max_buffered_mb: float = _option(
        2048.0, "MB", "memory for messages being received, over all connections together; "
        "a message that does not fit is refused and its connection closed", "no limit"
    )

    def __post_init__(self) -> None:
        if self.port is None and not self.connect:
            raise ConfigError("stream: give a port to listen on or imagers to connect to")
        if self.bands < 0:
            raise ConfigError("stream.bands must be >= 0")
        if self.max_wait_s < 0:
            raise ConfigError("stream.max_wait_s must be >= 0")
        if self.max_queue < 1:
            raise ConfigError("stream.max_queue must be >= 1")
        if self.spool_max_mb < 0:
            raise ConfigError("stream.spool_max_mb must be >= 0 (0: no spool)")
        if self.reconnect_initial_s <= 0 or self.reconnect_max_s < self.reconnect_initial_s:
            raise ConfigError("stream: reconnect backoff must be > 0 and max >= initial")
        for name in GUARD_OPTIONS:
            if getattr(self, name) < 0:
                raise ConfigError(f"stream.{name} must be >= 0 (0: no limit)")

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


GUARD_OPTIONS = ("max_connections", "idle_timeout_s", "message_timeout_s", "max_buffered_mb")


def add_guard_options(parser: argparse.ArgumentParser) -> None:
    """The guard settings of :class:`StreamConfig` as flags (``--max-connections`` ...),
    with their defaults and help taken from the dataclass fields."""
    fields = {f.name: f for f in dataclasses.fields(StreamConfig)}
    for name in GUARD_OPTIONS:
        f = fields[name]
        parser.add_argument(
            "--" + name.replace("_", "-"),
            type=type(f.default),
            default=f.default,
            metavar=f.metadata["metavar"],
            help=f"{f.metadata['help']} (default %(default)s; 0: {f.metadata['zero']})",
        )


def guard_options(args: argparse.Namespace) -> dict:
    """The guard settings parsed by :func:`add_guard_options`, as StreamConfig keywords."""
    return {name: getattr(args, name) for name in GUARD_OPTIONS}


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
