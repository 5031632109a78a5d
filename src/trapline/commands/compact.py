"""``trapline compact --db URL``: down-sample old measurements into time bins."""

from __future__ import annotations

import argparse
import time

from trapline.commands import add_config_option, add_db_option
from trapline.pipeline.config import load_config
from trapline.storage import Store
from trapline.storage.compaction import compact, tiers_from


def configure(p: argparse.ArgumentParser) -> None:
    add_db_option(p)
    add_config_option(p)
    p.add_argument("--passes", type=int, default=None,
                   help="stop after this many passes (default: until nothing is left)")
    p.add_argument("--now-mjd", type=float, default=None,
                   help="reference time (default: the newest measurement)")


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    lc = config.lightcurves
    start = time.perf_counter()
    with Store(args.db) as store:
        store.upgrade()
        passes = compact(store.engine, tiers_from(lc.tiers), max_passes=args.passes,
                         batch_rows=lc.batch_rows, candidate_window_s=lc.candidate_window_s,
                         keep_monitor_raw=lc.keep_monitor_raw, now_mjd=args.now_mjd)
    moved = sum(p.rows_deleted for p in passes)
    kept = sum(p.rows_kept_raw for p in passes)
    bins = sum(p.bins_written for p in passes)
    seconds = time.perf_counter() - start
    print(f"{len(passes)} passes in {seconds:.1f} s: {moved} rows down-sampled into {bins} "
          f"bin updates, {kept} kept at full resolution")
    return 0
