"""Streaming: a simulated AARTFAAC-like stream through ``trapline listen``.

A sender process (``trapline simulate --stream``, rendering images on the fly) sends
1024x1024 images in 2 bands at 2 timesteps per second in the AARTFAAC wire format to a
Listener in this process, which measures the bands in parallel worker processes and
decides and stores in order (SQLite), with the alerter plug-in publishing alerts.
Reported: sustained rate against the offered rate, p50/p99 latency from a timestep's
first image arriving to its last image stored and to its first alert published,
dropped images, and the queue depth over time (growth means falling behind).

The sender shares the machine's two cores with the pipeline (a real imager is another
machine), so the figures are a lower bound.

    python bench/stream_bench.py [--seconds 120] [--rate 2] [--size 1024] [--bands 2] [--allsky]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import environment, environment_line, mark, table  # noqa: E402

from trapline.pipeline.config import PipelineConfig  # noqa: E402
from trapline.run import LiveProcessor  # noqa: E402
from trapline.stream.config import StreamConfig  # noqa: E402
from trapline.stream.listener import Listener  # noqa: E402


async def run(args, db_url: str) -> dict:
    from trapline.plugins.alerter import Alerter

    config = PipelineConfig()
    processor = LiveProcessor(db_url, config, plugins=[Alerter()])
    listener = Listener(StreamConfig(host="127.0.0.1", port=0, bands=args.bands,
                                     max_wait_s=2.0, max_queue=args.max_queue), processor)
    task = asyncio.create_task(listener.run())
    await listener.started.wait()
    port = listener.ports[0]
    epochs = int(args.seconds * args.rate)
    sender = subprocess.Popen(
        [sys.executable, "-m", "trapline.cli", "simulate", "--stream", f"127.0.0.1:{port}",
         "--stream-format", "gijs", "--stream-cadence-s", str(1 / args.rate),
         "--epochs", str(epochs), "--bands", str(args.bands), "--size", str(args.size),
         "--n-steady", str(args.sources), "--n-variable", "10", "--n-transient", "5",
         "--n-fading", "5", "--min-separation-beams", "3",
         *(["--allsky", "--drift", "--cadence-s", str(1 / args.rate)] if args.allsky else [])],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    depth: list[tuple[float, int]] = []
    start = time.monotonic()
    first = None
    while sender.poll() is None:
        now = time.monotonic() - start
        if first is None and listener.metrics.images_decoded:
            first = now
        if first is not None:
            depth.append((now, listener.metrics.queue_depth))
        await asyncio.sleep(0.25)
    sent_s = time.monotonic() - start
    listener.stop()
    metrics = await task
    done_s = time.monotonic() - start
    if sender.returncode:
        raise SystemExit(f"sender failed: {sender.stderr.read()}")
    return {"epochs": epochs, "sent_s": sent_s, "done_s": done_s, "first_s": first or 0.0,
            "metrics": metrics,
            "latencies": processor.latencies_s, "depth": depth,
            "alert_latencies": processor.alert_latencies_s,
            "alerts": processor.plugins[0].published,
            "processing_s": processor.seconds}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="length of the stream")
    parser.add_argument("--rate", type=float, default=2.0, help="timesteps per second")
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--bands", type=int, default=2)
    parser.add_argument("--sources", type=int, default=280, help="steady sources")
    parser.add_argument("--max-queue", type=int, default=64)
    parser.add_argument("--allsky", action="store_true",
                        help="AARTFAAC-like all-sky images centred on the zenith, drifting "
                             "with the sky (a WCS per timestep)")
    args = parser.parse_args()
    print("Trapline streaming benchmark: simulated AARTFAAC stream through trapline listen")
    print(environment_line(environment()))
    print(f"{args.size}x{args.size}{' all-sky, drifting' if args.allsky else ''}, "
          f"{args.bands} bands, {args.rate} timesteps/s for "
          f"{args.seconds:.0f} s ({args.rate * args.bands:.0f} images/s offered), "
          f"{os.cpu_count()} cores shared with the sender\n")
    with tempfile.TemporaryDirectory() as tmp:
        out = asyncio.run(run(args, f"sqlite:///{Path(tmp) / 'stream.sqlite'}"))
    m = out["metrics"]
    lat = np.array(out["latencies"])
    processed = m.images_processed
    offered = out["epochs"] * args.bands
    rate = processed / (out["done_s"] - out["first_s"])
    depths = np.array([d for _, d in out["depth"]])
    half = len(depths) // 2
    growth = (depths[half:].mean() - depths[:half].mean()) if half else 0.0
    p99 = float(np.percentile(lat, 99)) if len(lat) else float("nan")
    alat = np.array(out["alert_latencies"])
    rows = [
        ["images offered / processed / dropped",
         f"{offered} / {processed} / {sum(m.dropped.values())}", ""],
        ["sustained rate (first arrival to last stored)",
         f"{rate:.2f} images/s ({rate / (args.rate * args.bands):.2f}x offered)",
         mark(rate >= 0.95 * args.rate * args.bands)],
        ["drained after the last image", f"{out['done_s'] - out['sent_s']:.1f} s", ""],
        ["latency arrival -> stored, p50",
         f"{statistics.median(lat):.2f} s" if len(lat) else "-", ""],
        ["latency arrival -> stored, p99", f"{p99:.2f} s", mark(p99 < 1.0)],
        ["slowest timestep (its place in the stream)",
         f"{lat.max():.2f} s (#{int(lat.argmax()) + 1} of {len(lat)})" if len(lat) else "-", ""],
        ["alerts published (alerter plug-in, in-process)", f"{out['alerts']}", ""],
        ["latency arrival -> alert published, p50 / p99",
         f"{np.median(alat):.2f} s / {np.percentile(alat, 99):.2f} s" if len(alat) else "-",
         mark(len(alat) > 0 and np.percentile(alat, 99) < 1.0)],
        ["queue depth: max, mean first half -> second half",
         f"{depths.max() if len(depths) else 0}, {depths[:half].mean() if half else 0:.1f} -> "
         f"{depths[half:].mean() if half else 0:.1f}", mark(growth <= 1.0)],
        ["processing time per timestep (mean)",
         f"{out['processing_s'] / max(m.timesteps_processed, 1) * 1000:.0f} ms", ""],
    ]
    print(table(["", "figure", "target"], rows, "llll"[:3]))
    print("\nqueue depth every 10 s:", " ".join(str(d) for t, d in out["depth"][::40]))
    print(f"metrics: {m.log_line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
