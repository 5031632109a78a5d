"""``trapline config``: show or check the pipeline configuration."""

from __future__ import annotations

import argparse
import json

from trapline.pipeline.config import defaults_toml, load_config
from trapline.plugins.base import builtin_options


def configure(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group(required=True)
    group.add_argument(
        "--defaults", action="store_true", help="print every option, its default and meaning (TOML)"
    )
    group.add_argument(
        "--check",
        metavar="FILE.toml",
        help="validate a configuration file and print the result as JSON",
    )


def run(args: argparse.Namespace) -> int:
    if args.defaults:
        print(defaults_toml(builtin_options()), end="")
        return 0
    config = load_config(args.check)
    print(json.dumps(config.to_dict(), indent=2))
    return 0
