"""One module per ``trapline`` sub-command (see :mod:`trapline.cli`), and the options
several of them share."""

from __future__ import annotations

import argparse


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
