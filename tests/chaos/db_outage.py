"""Database outages of any length (not collected by pytest, not run in CI): a private
PostgreSQL server stopped after a few stored images and started again ``--outage-s``
later, during ``trapline run`` and during ``trapline listen``; each compared with an
uninterrupted run on the same server.

    PYTHONPATH=src python tests/chaos/db_outage.py [--outage-s 300] [--images 40]

``[run] storage_outage_s`` is set above the outage, so the run waits it out. Prints one
line per mode; exits 1 when an image was lost or the tables differ.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS))

from helpers import run_tables, stream_through  # noqa: E402
from test_db_outage import PrivateServer, _config, _outage_after  # noqa: E402

from trapline.run import LiveProcessor, run_files  # noqa: E402
from trapline.simulate import SimulationConfig, write_series  # noqa: E402


def same(a: str, b: str) -> bool:
    ta, tb = run_tables(a), run_tables(b)
    return all(ta[name].equals(tb[name]) for name in ta)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--outage-s", type=float, default=300.0, help="outage length (s)")
    p.add_argument("--images", type=int, default=40, help="images per run")
    args = p.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="trapline-outage-"))
    server = PrivateServer(folder)
    wait = args.outage_s + 120.0
    ok = True
    try:
        series = write_series(SimulationConfig(seed=7, epochs=args.images, bands=1, size=192,
                                               n_steady=12, n_variable=2, n_transient=2,
                                               n_fading=1), folder / "series")
        reference = server.create("reference")
        run_files([str(series.out_dir)], reference, _config(wait))
        url = server.create("run_outage")
        outage = _outage_after(server, url, images=10, seconds=args.outage_s)
        start = time.monotonic()
        summary = run_files([str(series.out_dir)], url, _config(wait))
        outage.join(wait)
        stored, equal = server.images_stored(url), same(reference, url)
        ok &= stored == args.images and equal and not summary.failed
        print(f"run: {args.outage_s:g} s outage after 10 of {args.images} images: "
              f"{stored} stored, lost {args.images - stored}, tables equal {equal}, "
              f"wall {time.monotonic() - start:.0f} s")
        sim = SimulationConfig(seed=9, epochs=args.images, bands=1, size=128, n_steady=6,
                               n_variable=1, n_transient=1, n_fading=0)
        reference = server.create("live_reference")
        stream_through(LiveProcessor(reference, _config(wait)), sim)
        url = server.create("live_outage")
        outage = _outage_after(server, url, images=10, seconds=args.outage_s)
        metrics = stream_through(LiveProcessor(url, _config(wait)), sim)
        outage.join(wait)
        stored, equal = server.images_stored(url), same(reference, url)
        dropped = sum(metrics.dropped.values())
        ok &= stored == args.images and equal and dropped == 0
        print(f"listen: {args.outage_s:g} s outage after 10 of {args.images} images: "
              f"{metrics.images_processed} processed, {dropped} dropped, {stored} stored, "
              f"lost {args.images - stored}, tables equal {equal}")
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
