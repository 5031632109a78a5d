"""``trapline run IMAGES... --db URL``: the pipeline over a set of images."""

from __future__ import annotations

import argparse

from trapline.commands import add_config_option, add_db_option, add_plugin_option, load_plugin_specs
from trapline.pipeline.config import load_config
from trapline.run import run_files


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="IMAGES_OR_FOLDERS",
        help="FITS files, CASA images, folders (searched recursively) or globs",
    )
    add_db_option(p)
    add_config_option(p)
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="extraction worker processes (default: one per core)",
    )
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="Dask distributed scheduler: measure images on its workers")
    p.add_argument("--broker", default=None, metavar="URL",
                   help="publish every channel on this broker (e.g. redis://127.0.0.1:6379/0) "
                        "for plug-ins run with 'trapline consume'")
    add_plugin_option(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.workers is not None:
        if args.workers < 0:
            print("trapline run: error: --workers must be >= 0")
            return 2
        config.run.workers = args.workers
    summary = run_files(args.inputs, args.db, config, progress=not args.no_progress,
                        scheduler=args.scheduler, broker=args.broker,
                        plugins=load_plugin_specs(args.plugin, args.db))
    print(summary.report())
    return 1 if summary.failed else 0
