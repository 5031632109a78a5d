"""The ``trapline`` command: one sub-command per module in :mod:`trapline.commands`.

Each command module defines ``configure(parser)`` to add its arguments and
``run(args) -> int`` returning the exit code; its one-line help is in ``COMMANDS``.
Exit codes: 0 success, 1 the job ran but something failed, 2 bad usage or input
(including a missing optional package and a port already in use). User errors are one
line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Iterable
from typing import NoReturn

from trapline import __version__
from trapline.errors import TraplineError

# The sub-commands and their one-line help. A command's module is imported only when
# that command runs (it imports what it needs at module level): ``trapline --help``
# loads none of them.
COMMANDS = {
    "demo": "Simulate a small sky with transients and run the pipeline on it (embedded, "
            "no server).",
    "simulate": "Write a simulated radio sky (FITS series, truth.csv, images.csv, "
                "sidelobes.csv, sources.csv) for tests and demos.",
    "extract": "Extract sources from an image (FITS or CASA) and print them as CSV or JSON.",
    "run": "Run the pipeline over images (files, folders, globs) into a database.",
    "listen": "Receive images live from imagers over TCP and run the pipeline on them.",
    "consume": "Run plug-ins (alerter, dbwriter, parquet, compactor, your own) on a shared "
               "broker.",
    "serve": "Serve the web interface and JSON API of a stored run (FastAPI, 127.0.0.1 by "
             "default).",
    "export": "Export a stored table as CSV or Parquet.",
    "compact": "Compact old lightcurve points into coarser time bins (incremental, safe to "
               "interrupt).",
    "config": "Print every configuration option with its default, or check a configuration "
              "file.",
    "db": "Database schema: create or upgrade it to the newest revision, or show its "
          "revision.",
}


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (what is wrong, where to read
    more) with exit code 2; sub-command parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_verbose_option(p: argparse.ArgumentParser, dest: str) -> None:
    """``-v``: before the sub-command (``dest`` verbose) or after it (sub_verbose)."""
    p.add_argument("-v", "--verbose", dest=dest, action="count", default=0,
                   help="more log output (-vv: debug)")


def build_parser(configure: Iterable[str] = COMMANDS) -> argparse.ArgumentParser:
    """The parser of every sub-command; those in ``configure`` (default: all) get their
    arguments, which imports their modules."""
    parser = Parser(
        prog="trapline",
        description="Trapline: real-time transient detection for radio image streams.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbose_option(parser, "verbose")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, text in COMMANDS.items():
        p = sub.add_parser(name, help=text, description=text)
        add_verbose_option(p, "sub_verbose")
        if name in configure:
            module = importlib.import_module(f"trapline.commands.{name}")
            module.configure(p)
            p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # The sub-command is the first word that is not an option (the options before it
    # take no value); only its module is imported.
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser([command] if command in COMMANDS else [])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + getattr(args, "sub_verbose", 0), 2),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        return int(args._run(args) or 0)
    except TraplineError as exc:
        print(f"trapline {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
