"""The ``trapline`` command: one sub-command per module in :mod:`trapline.commands`.

Each command module defines ``HELP`` (one line), ``configure(parser)`` to add its
arguments and ``run(args) -> int`` returning the exit code. Exit codes: 0 success,
1 the job ran but something failed, 2 bad usage or input (including a missing optional
package and a port already in use). User errors are one line on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import NoReturn

from trapline import __version__
from trapline.errors import TraplineError

COMMANDS = [
    "demo", "simulate", "extract", "run", "listen", "consume", "serve", "export", "compact",
    "config", "db",
]


class Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (what is wrong, where to read
    more) with exit code 2; sub-command parsers are of the same class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def add_verbose_option(p: argparse.ArgumentParser, dest: str) -> None:
    """``-v``: before the sub-command (``dest`` verbose) or after it (sub_verbose)."""
    p.add_argument("-v", "--verbose", dest=dest, action="count", default=0,
                   help="more log output (-vv: debug)")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="trapline",
        description="Trapline: real-time transient detection for radio image streams.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_verbose_option(parser, "verbose")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"trapline.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"trapline.commands.{name}":
                continue  # command not built yet
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        add_verbose_option(p, "sub_verbose")
        module.configure(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
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
