"""One module per ``trapline`` sub-command (see :mod:`trapline.cli`), and the options
several of them share."""

from __future__ import annotations

import argparse
import socket

from trapline.errors import TraplineError
from trapline.plugins.base import load_plugin_spec, parse_spec


def port_number(text: str) -> int:
    """argparse type of a TCP port to listen on: an integer from 1 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (1-65535)")
    return port


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host``:``port`` and listening.

    Raises:
        TraplineError: the address cannot be used (port in use, unknown host, ...).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET  # as uvicorn decides
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError as exc:
        sock.close()
        raise TraplineError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                            "choose another --port or --host") from None
    return sock


def add_db_option(p: argparse.ArgumentParser) -> None:
    """``--db``: where the run is stored."""
    p.add_argument(
        "--db", default=None, help="SQLAlchemy URL or SQLite file (default: trapline.sqlite here)"
    )


def add_config_option(p: argparse.ArgumentParser) -> None:
    """``--config``: the pipeline configuration file."""
    p.add_argument(
        "--config",
        default=None,
        metavar="FILE.toml",
        help="pipeline configuration file (see 'trapline config --defaults')",
    )


def add_plugin_option(p: argparse.ArgumentParser) -> None:
    """``--plugin``: plug-ins fed in this process after each image."""
    p.add_argument("--plugin", action="append", default=[], metavar="PLUGIN[:KEY=VALUE,...]",
                   help="run this plug-in in-process: an entry-point name (alerter, console, "
                        "files, webhook, email, ...), module:Class, module.Class or a file "
                        "FILE.py[:Class], then options, e.g. console:base_url=http://127.0.0.1"
                        ":8000; repeatable")


def load_plugin_specs(specs: list[str], db_url: str | None = None) -> list:
    """Plug-ins from ``--plugin`` specs; the database URL goes to those that take one."""
    plugins = []
    for spec in specs:
        try:
            name = parse_spec(spec)[0]
            defaults = {"url": db_url} if db_url and name in ("dbwriter", "alerter") else {}
            plugins.append(load_plugin_spec(spec, **defaults))
        except (LookupError, ValueError, TypeError, ImportError) as exc:
            raise TraplineError(f"plug-in {spec!r}: {exc}") from exc
    return plugins


def console_first(specs: list[str], config) -> list[str]:
    """``--plugin`` specs with the console sink first, unless it is given already (on
    the command line or in the configuration's ``[[plugins]]``)."""
    given = [parse_spec(s)[0] for s in specs] + [p.get("name") for p in config.plugins]
    return specs if "console" in given else ["console", *specs]
