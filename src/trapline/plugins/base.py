"""Plug-ins: the consumers of the channels, and the host that feeds them.

A plug-in is any object with a ``name``, the ``channels`` it consumes, ``handle(record)``
and ``close()`` (:class:`Plugin`); :class:`BasePlugin` supplies the defaults and the
``context`` (a ``publish`` function, the database URL) given by the host at start.

Plug-ins are found by name among the entry points of group ``trapline.plugins`` (which
the built-ins are too), or by a path: ``package.module:Class``, ``package.module.Class``
(a module in the working folder is found too), ``file.py`` or ``file.py:Class``; on the
command line with options after it (``--plugin NAME:key=value,...``, :func:`parse_spec`),
in the configuration as a table::

    [[plugins]]
    name = "dbwriter"               # entry point name, or
    path = "mypackage.alerts:Printer"   # a path
    url = "sqlite:///run.sqlite"    # any other key is passed to the factory

A plug-in may declare its options once in ``OPTIONS`` (:class:`Option`: default, type,
help; see :class:`Configurable`): they are then checked and converted from either
source, and listed by ``trapline config --defaults``. A plug-in consuming ``alerts``
gets an alerter from the host when none runs with it (:func:`with_alerter`).

The :class:`PluginHost` reads each plug-in's channels in the plug-in's own consumer
group, calls ``handle`` and acknowledges only after it returned: a plug-in that raises
gets the message again on the next read, and after ``max_deliveries`` the message goes
to the ``deadletter`` channel instead.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import sys
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar, Protocol, runtime_checkable

from trapline.channels import codec
from trapline.channels.base import ALERTS, DEADLETTER, Broker, Message, Undecodable
from trapline.errors import ConfigError
from trapline.storage.engine import describe, normalise_url, sqlite_file

__all__ = [
    "BUILTIN", "ENTRY_POINT_GROUP", "BasePlugin", "Configurable", "DeadLetter", "Option",
    "Plugin", "PluginContext", "PluginHost", "builtin_options", "database_group", "discover",
    "group_of", "load_plugin",
    "load_plugin_spec", "load_plugins", "parse_spec", "with_alerter",
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
    "console": "trapline.plugins.console:ConsoleSink",
    "files": "trapline.plugins.files:FilesSink",
    "webhook": "trapline.plugins.webhook:WebhookSink",
    "email": "trapline.plugins.mail:EmailSink",
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


@dataclass(frozen=True)
class Option:
    """One option of a plug-in, declared once: its default, its meaning and (from the
    default unless given) its type: bool, int, float, str or list of str. Values may come
    as text (``--plugin NAME:key=value``) or typed (a TOML ``[[plugins]]`` table)."""

    default: Any
    help: str
    type: type | None = None

    @property
    def kind(self) -> type:
        return self.type or type(self.default)

    def convert(self, value: Any) -> Any:
        """``value`` as this option's type; ValueError saying what is expected."""
        kind = self.kind
        if kind is bool:
            if isinstance(value, str) and value.lower() in _BOOLS:
                return _BOOLS[value.lower()]
            if isinstance(value, bool):
                return value
            raise ValueError(f"must be true or false, got {value!r}")
        if kind is list:
            if isinstance(value, str):  # text: comma or space separated
                return [v for v in re.split(r"[,\s]+", value) if v]
            if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
                return list(value)
            raise ValueError(f"must be a list of strings, got {value!r}")
        if kind in (int, float):
            if isinstance(value, str):
                try:
                    return kind(value)
                except ValueError:
                    pass
            elif not isinstance(value, bool) and isinstance(value, int | float) and (
                    kind is float or float(value).is_integer()):
                return kind(value)
            raise ValueError(f"must be {'an integer' if kind is int else 'a number'}, "
                             f"got {value!r}")
        if not isinstance(value, str):
            raise ValueError(f"must be a string, got {value!r}")
        return value


_BOOLS = {"true": True, "yes": True, "on": True, "1": True,
          "false": False, "no": False, "off": False, "0": False}


class Configurable:
    """Plug-ins whose options are declared in ``OPTIONS`` (name: :class:`Option`): the
    constructor takes exactly those, converted to their types, as attributes."""

    name: str = "plugin"
    OPTIONS: ClassVar[dict[str, Option]] = {}

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} of plug-in {self.name}; "
                             f"options are: {', '.join(self.OPTIONS)}")
        for key, option in self.OPTIONS.items():
            try:
                value = option.convert(options[key]) if key in options else option.default
            except ValueError as exc:
                raise ValueError(f"option {key!r} of plug-in {self.name} {exc}") from None
            setattr(self, key, list(value) if isinstance(value, list) else value)


def builtin_options() -> dict[str, dict[str, Option]]:
    """The declared options of each built-in plug-in that declares them."""
    out = {}
    for name, target in BUILTIN.items():
        options = getattr(_import(target), "OPTIONS", None)
        if options:
            out[name] = options
    return out


def parse_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``--plugin`` text into the plug-in (name, ``module:Class``, ``module.Class``,
    ``file.py`` or ``file.py:Class``) and its options as text: ``TARGET:key=value,...``.
    A value may hold commas (``to=a@x.org,b@y.org``) and colons (URLs)."""
    eq = spec.find("=")
    if eq < 0:
        return spec, {}
    colon = spec.rfind(":", 0, eq)
    if colon < 0:
        raise ValueError("options go after the plug-in, as NAME:key=value,key=value")
    options: dict[str, str] = {}
    for item in re.split(r",(?=\s*[A-Za-z_][\w-]*=)", spec[colon + 1:]):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"plug-in option {item!r} is not KEY=VALUE")
        options[key.strip()] = value
    return spec[:colon], options


def guess_types(options: Mapping[str, str]) -> dict[str, Any]:
    """Text options with numbers as numbers, for plug-ins that declare no ``OPTIONS``."""
    out: dict[str, Any] = {}
    for key, value in options.items():
        for cast in (int, float):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
        else:
            out[key] = value
    return out


def _load_file(path: Path) -> ModuleType:
    """A plug-in file as the module named after it (so its records can be pickled)."""
    path = path.resolve()
    if not path.is_file():
        raise ImportError(f"no plug-in file {path}")
    module = sys.modules.get(path.stem)
    if module is not None and getattr(module, "__file__", None) == str(path):
        return module
    spec = importlib.util.spec_from_file_location(path.stem, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def _only_plugin(module: ModuleType) -> Any:
    """The one plug-in class defined in a module."""
    found = [obj for obj in vars(module).values()
             if isinstance(obj, type) and obj.__module__ == module.__name__
             and all(hasattr(obj, a) for a in ("name", "channels", "handle", "close"))]
    if len(found) != 1:
        names = ", ".join(c.__name__ for c in found) or "none"
        raise ValueError(f"{module.__file__} has {len(found)} plug-in classes ({names}): "
                         "name one, as FILE.py:Class")
    return found[0]


def _import_module(name: str) -> ModuleType:
    """Import ``name``; a module in the working folder is found too (as ``python -m``
    would), so ``--plugin print_alerts:PrintAlerts`` works where the file is."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        top = name.partition(".")[0]
        here = Path.cwd()
        if exc.name != top or not ((here / f"{top}.py").is_file()
                                   or (here / top / "__init__.py").is_file()):
            raise
    sys.path.insert(0, str(here))
    return importlib.import_module(name)


def _import(target: str) -> Any:
    """The factory at ``module:attr``, ``module.attr``, ``file.py`` or ``file.py:attr``."""
    module_name, _, attr = target.partition(":")
    if module_name.endswith(".py"):
        module = _load_file(Path(module_name))
        obj: Any = module if attr else _only_plugin(module)
    else:
        if not attr:
            module_name, _, attr = target.rpartition(".")
        if not module_name or not attr:
            raise ValueError(f"bad plug-in path {target!r}: use 'package.module:Class'")
        obj = _import_module(module_name)
    for part in filter(None, attr.split(".")):
        obj = getattr(obj, part)
    return obj


def _factory(spec: str) -> Any:
    known = discover()
    if spec in known:
        return _import(known[spec])
    head, _, rest = spec.partition(":")
    if head in known:  # e.g. 'alerter:points' (no '=')
        raise ValueError(f"plug-in option {rest!r} is not KEY=VALUE")
    if "." not in spec and ":" not in spec:
        raise LookupError(f"no plug-in named {spec!r}; known: {', '.join(sorted(known))}")
    return _import(spec)


def _make(spec: str, factory: Any, options: Mapping[str, Any]) -> Plugin:
    plugin = factory(**options) if callable(factory) else factory
    for attr in ("name", "channels", "handle", "close"):
        if not hasattr(plugin, attr):
            raise TypeError(f"plug-in {spec!r} has no {attr!r}")
    return plugin


def load_plugin(spec: str, **options: Any) -> Plugin:
    """Make a plug-in from an entry point name or a path (``package.module:Class``,
    ``package.module.Class``, ``file.py[:Class]``), calling the factory (a class or
    function) with ``options``."""
    return _make(spec, _factory(spec), options)


def load_plugin_spec(spec: str, **defaults: Any) -> Plugin:
    """A plug-in from ``--plugin`` text (see :func:`parse_spec`); ``defaults`` are
    options used unless the text sets them. Plug-ins declaring ``OPTIONS`` convert the
    text themselves; for others numbers are guessed (:func:`guess_types`)."""
    target, text = parse_spec(spec)
    factory = _factory(target)
    options = dict(text) if hasattr(factory, "OPTIONS") else guess_types(text)
    return _make(target, factory, {**defaults, **options})


def load_plugins(config: Iterable[Mapping[str, Any]]) -> list[Plugin]:
    """Plug-ins from configuration entries (``name`` or ``path`` plus options); a bad
    entry is a :class:`~trapline.errors.ConfigError` naming it."""
    plugins = []
    for entry in config:
        entry = dict(entry)
        spec = entry.pop("path", None) or entry.pop("name", None)
        entry.pop("name", None)
        if not spec:
            raise ConfigError(f"[[plugins]] entry without 'name' or 'path': {entry}")
        try:
            plugins.append(load_plugin(spec, **entry))
        except (LookupError, ValueError, TypeError, ImportError) as exc:
            raise ConfigError(f"[[plugins]] {spec}: {exc}") from exc
    return plugins


def with_alerter(plugins: Sequence[Plugin]) -> list[Plugin]:
    """The plug-ins, with an alerter (default options) first when one consumes
    ``alerts`` and none publishes them (``publishes``): a sink alone would get nothing.
    On a shared broker an added alerter joins the ``alerter`` group, so alerts are
    still made once per result."""
    plugins = list(plugins)
    consumes = [p.name for p in plugins if ALERTS in p.channels]
    if consumes and not any(ALERTS in getattr(p, "publishes", ()) for p in plugins):
        log.info("adding the alerter: %s consume(s) the alerts it makes", ", ".join(consumes))
        plugins.insert(0, load_plugin("alerter"))  # by name: the alerter is a plug-in too
    return plugins


def group_of(plugin: Plugin) -> str:
    """The consumer group a plug-in reads in: its ``group`` attribute (after start)
    when it has one, else its name."""
    return getattr(plugin, "group", None) or plugin.name


def database_group(name: str, url: Any) -> str:
    """The group of a plug-in that writes to one database (``url``: text or a
    SQLAlchemy URL): ``NAME:URL`` (the URL
    normalised, a SQLite file's path absolute, the password hidden). Writers to
    different databases then each get every message; writers to the same database
    share the work."""
    parsed = normalise_url(url)
    path = sqlite_file(parsed)
    if path is not None:
        parsed = parsed.set(database=str(path.expanduser().resolve()))
    return f"{name}:{describe(parsed)}"


class PluginHost:
    """Feeds plug-ins from a broker. Each plug-in reads in its own group
    (:func:`group_of`: its name, or for database writers the name and the database),
    as consumer ``consumer``; run several hosts with different consumer names to share
    the work of a group, or the same name to resume a host that stopped."""

    def __init__(self, broker: Broker, plugins: Iterable[Plugin], *, consumer: str = "host",
                 db_url: str | None = None, max_deliveries: int = 5, batch: int = 10):
        self.broker = broker
        self.plugins = with_alerter(plugins)
        self.consumer = consumer
        self.max_deliveries = max_deliveries
        self.batch = batch
        self.handled = 0
        self.failures = 0
        context = PluginContext(publish=lambda channel, record: broker.publish(channel, record),
                                db_url=db_url)
        for plugin in self.plugins:
            start = getattr(plugin, "start", None)
            if start is not None:
                start(context)
            for channel in plugin.channels:  # every group exists before anything is read
                broker.ensure_group(channel, group_of(plugin))

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
                messages = self.broker.read(channel, group_of(plugin), self.consumer,
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
