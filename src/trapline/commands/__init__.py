"""One module per ``trapline`` sub-command (see :mod:`trapline.cli`), and the options
several of them share."""

from __future__ import annotations

import argparse
import socket


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
    from trapline.errors import TraplineError

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
    p.add_argument("--plugin", action="append", default=[], metavar="NAME[:KEY=VALUE,...]",
                   help="run this plug-in in-process (entry-point name or dotted path, with "
                        "options), e.g. alerter or parquet:directory=archive; repeatable")


def load_plugin_specs(specs: list[str], db_url: str | None = None) -> list:
    """Plug-ins from ``--plugin`` specs; the database URL goes to those that take one."""
    from trapline.commands.consume import parse_plugin
    from trapline.errors import TraplineError
    from trapline.plugins.base import load_plugin

    plugins = []
    for spec in specs:
        try:
            name, options = parse_plugin(spec)
            if db_url and name in ("dbwriter", "alerter") and "url" not in options:
                options["url"] = db_url
            plugins.append(load_plugin(name, **options))
        except (LookupError, ValueError, TypeError, ImportError) as exc:
            raise TraplineError(f"plug-in {spec!r}: {exc}") from exc
    return plugins
