"""Plug-ins: the consumers of the channels, and the host that feeds them.

A plug-in is any object with a ``name``, the ``channels`` it consumes, ``handle(record)``
and ``close()`` (:class:`Plugin`); :class:`BasePlugin` supplies the defaults and the
``context`` (a ``publish`` function, the database URL) given by the host at start.

Plug-ins are found by name among the entry points of group ``trapline.plugins`` (which
the built-ins are too), or by a dotted path ``package.module:Class`` from the
configuration::

    [[plugins]]
    name = "dbwriter"               # entry point name, or
    path = "mypackage.alerts:Printer"   # a dotted path
    url = "sqlite:///run.sqlite"    # any other key is passed to the factory

The :class:`PluginHost` reads each plug-in's channels in the plug-in's own consumer
group, calls ``handle`` and acknowledges only after it returned: a plug-in that raises
gets the message again on the next read, and after ``max_deliveries`` the message goes
to the ``deadletter`` channel instead.
"""

from __future__ import annotations

import importlib
import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

from trapline.channels import codec
from trapline.channels.base import DEADLETTER, Broker, Message, Undecodable

__all__ = [
    "BUILTIN", "ENTRY_POINT_GROUP", "BasePlugin", "DeadLetter", "Plugin", "PluginContext",
    "PluginHost", "discover", "load_plugin", "load_plugins",
]

log = logging.getLogger(__name__)
ENTRY_POINT_GROUP = "trapline.plugins"

# The built-in plug-ins, also registered as entry points; found here even when the
# package metadata is not installed (e.g. running from a source tree).
BUILTIN = {
    "dbwriter": "trapline.plugins.dbwriter:DBWriter",
    "alerter": "trapline.plugins.alerter:Alerter",
    "compactor": "trapline.plugins.compactor:Compactor",
    "parquet": "trapline.plugins.parquet:ParquetArchiver",
}


@runtime_checkable
class Plugin(Protocol):
    """What the host needs of a plug-in."""

    name: str
    channels: Sequence[str]

    def handle(self, record: Any) -> None:
        """Handle one record; raise to have it delivered again later."""

    def close(self) -> None:
        """Flush and release resources."""


@dataclass
class PluginContext:
    """What the host gives a plug-in at start: ``publish(channel, record)`` on the
    host's broker, and the run's database URL (None if there is none)."""

    publish: Callable[[str, Any], str]
    db_url: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


class BasePlugin:
    """Convenient base: override ``handle`` (and ``close`` if needed). ``handle_message``
    gets the whole message (headers, id) and by default passes on its record."""

    name: str = "plugin"
    channels: Sequence[str] = ()
    context: PluginContext | None = None

    def start(self, context: PluginContext) -> None:
        self.context = context

    def handle(self, record: Any) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def handle_message(self, message: Message) -> None:
        self.handle(message.record)

    def close(self) -> None:
        pass

    def publish(self, channel: str, record: Any) -> str:
        """Publish on the host's broker (after :meth:`start`)."""
        if self.context is None:
            raise RuntimeError(f"plug-in {self.name!r} is not started: no broker to publish on")
        return self.context.publish(channel, record)


@codec.register
@dataclass
class DeadLetter:
    """A message a plug-in failed on ``max_deliveries`` times, or could not decode."""

    channel: str
    group: str
    message_id: str
    error: str
    record: Any = None


def discover() -> dict[str, str]:
    """Plug-in names and their ``module:attribute`` targets: the built-ins, then the
    ``trapline.plugins`` entry points of every installed distribution."""
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    return found


def _import(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    if not attr:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"bad plug-in path {target!r}: use 'package.module:Class'")
    obj: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def load_plugin(spec: str, **options: Any) -> Plugin:
    """Make a plug-in from an entry point name or a dotted path, calling the factory
    (a class or function) with ``options``."""
    known = discover()
    target = known.get(spec, spec)
    if target == spec and "." not in spec and ":" not in spec:
        raise LookupError(f"no plug-in named {spec!r}; known: {', '.join(sorted(known))}")
    factory = _import(target)
    plugin = factory(**options) if callable(factory) else factory
    for attr in ("name", "channels", "handle", "close"):
        if not hasattr(plugin, attr):
            raise TypeError(f"plug-in {spec!r} has no {attr!r}")
    return plugin


def load_plugins(config: Iterable[Mapping[str, Any]]) -> list[Plugin]:
    """Plug-ins from configuration entries (``name`` or ``path`` plus options)."""
    plugins = []
    for entry in config:
        entry = dict(entry)
        spec = entry.pop("path", None) or entry.pop("name", None)
        entry.pop("name", None)
        if not spec:
            raise ValueError(f"plug-in entry without 'name' or 'path': {entry}")
        plugins.append(load_plugin(spec, **entry))
    return plugins


class PluginHost:
    """Feeds plug-ins from a broker. Each plug-in reads in its own group (its name), as
    consumer ``consumer``; run several hosts with different consumer names to share
    the work of a group, or the same name to resume a host that stopped."""

    def __init__(self, broker: Broker, plugins: Iterable[Plugin], *, consumer: str = "host",
                 db_url: str | None = None, max_deliveries: int = 5, batch: int = 10):
        self.broker = broker
        self.plugins = list(plugins)
        self.consumer = consumer
        self.max_deliveries = max_deliveries
        self.batch = batch
        self.handled = 0
        self.failures = 0
        context = PluginContext(publish=lambda channel, record: broker.publish(channel, record),
                                db_url=db_url)
        for plugin in self.plugins:
            for channel in plugin.channels:  # every group exists before anything is read
                broker.ensure_group(channel, plugin.name)
            start = getattr(plugin, "start", None)
            if start is not None:
                start(context)

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _deliver(self, plugin: Plugin, message: Message) -> None:
        if isinstance(message.record, Undecodable):
            self._dead(plugin, message, f"undecodable: {message.record.error}")
            return
        try:
            handler = getattr(plugin, "handle_message", None)
            if handler is not None:
                handler(message)
            else:
                plugin.handle(message.record)
        except Exception as exc:  # noqa: BLE001 - a plug-in must not stop the others
            self.failures += 1
            if message.deliveries >= self.max_deliveries:
                self._dead(plugin, message, f"{type(exc).__name__}: {exc}")
            else:
                log.warning("plug-in %s failed on %s message %s (delivery %d): %s; will retry",
                            plugin.name, message.channel, message.id, message.deliveries, exc)
            return
        self.broker.ack(message)  # only after the plug-in's work is done
        self.handled += 1

    def _dead(self, plugin: Plugin, message: Message, error: str) -> None:
        log.error("plug-in %s gives up on %s message %s: %s", plugin.name, message.channel,
                  message.id, error)
        record = None if isinstance(message.record, Undecodable) else message.record
        self.broker.publish(DEADLETTER, DeadLetter(message.channel, message.group, message.id,
                                                   error, record))
        self.broker.ack(message)

    def run_once(self, block_s: float = 0.0) -> int:
        """One read per plug-in and channel; returns the number of messages handled
        (successfully or not)."""
        n = 0
        for plugin in self.plugins:
            for channel in plugin.channels:
                messages = self.broker.read(channel, plugin.name, self.consumer,
                                            count=self.batch, block_s=block_s)
                for message in messages:
                    self._deliver(plugin, message)
                n += len(messages)
        return n

    def drain(self, max_rounds: int = 1000) -> int:
        """Read until no plug-in has anything left (e.g. after each publish when the
        broker is embedded); returns the number of messages handled."""
        total = 0
        for _ in range(max_rounds):
            n = self.run_once()
            total += n
            if n == 0:
                break
        return total

    def run(self, stop: threading.Event, idle_s: float = 0.2) -> None:
        """Serve until ``stop`` is set, polling every ``idle_s`` when there is nothing."""
        while not stop.is_set():
            if self.run_once() == 0:
                stop.wait(idle_s)

    def close(self) -> None:
        for plugin in self.plugins:
            try:
                plugin.close()
            except Exception as exc:  # noqa: BLE001
                log.error("closing plug-in %s failed: %s", plugin.name, exc)
