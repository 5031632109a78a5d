"""``trapline listen --db URL``: the pipeline on images streamed live by imagers."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import signal
import time

from trapline.commands import (
    add_config_option,
    add_db_option,
    add_plugin_option,
    console_first,
    load_plugin_specs,
)
from trapline.errors import ConfigError
from trapline.image import Beam
from trapline.options import add_flags, flag_values
from trapline.pipeline.config import load_config
from trapline.run import LiveProcessor
from trapline.storage.engine import default_url, normalise_url, sqlite_file
from trapline.stream import Limits, Listener, parse_address
from trapline.stream.config import StreamConfig

log = logging.getLogger(__name__)


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="accept imagers on this TCP port (default 6666 unless --connect is given; "
        "0: any free port)",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default %(default)s; 0.0.0.0 for all)",
    )
    p.add_argument(
        "--connect",
        nargs="+",
        action="extend",
        default=[],
        metavar="HOST:PORT",
        help="imagers to connect to (client mode), reconnecting with backoff",
    )
    add_db_option(p)
    add_config_option(p)
    add_flags(p, StreamConfig, "timestep")
    add_plugin_option(p)
    p.add_argument("--no-console", action="store_true",
                   help="no line per alert on standard output (the console plug-in)")
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="tcp://HOST:PORT",
        help="Dask distributed scheduler: measure the images on its workers",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="P",
        help="serve Prometheus metrics at http://HOST:P/metrics",
    )
    p.add_argument(
        "--metrics-every-s",
        type=float,
        default=60.0,
        metavar="S",
        help="log the counters every S seconds (default %(default)s; 0: never)",
    )
    p.add_argument(
        "--max-image-mb",
        type=float,
        default=1024.0,
        metavar="MB",
        help="largest pixel payload accepted per image (default %(default)s)",
    )
    add_flags(p, StreamConfig, "guard")
    p.add_argument(
        "--duration-s",
        type=float,
        default=None,
        metavar="S",
        help="stop after S seconds (tests, demos); default: until interrupted",
    )


def default_spool_dir(db: str | None) -> str:
    """The SQLite database's folder (the working folder for other databases), where the
    spool makes its temporary folder: on the database's disk, not a small /tmp."""
    from pathlib import Path

    path = sqlite_file(normalise_url(db or default_url()))
    return str(path.parent if path else Path.cwd())


def run(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    # Progress at the default log level: the listener's periodic counts and candidates.
    progress_log = logging.getLogger("trapline.stream.listener")
    if progress_log.getEffectiveLevel() > logging.INFO:
        progress_log.setLevel(logging.INFO)
    port = args.port if args.port is not None else (None if args.connect else 6666)
    try:
        values = flag_values(args, StreamConfig)
        values["spool_dir"] = values.get("spool_dir") or default_spool_dir(args.db)
        stream = StreamConfig(
            host=args.host,
            port=port,
            connect=[parse_address(a) for a in args.connect],
            limits=Limits(max_pixel_bytes=int(args.max_image_mb * 2**20)),
            metrics_port=args.metrics_port,
            log_every_s=args.metrics_every_s,
            **values,
        )
    except ConfigError as exc:
        print(f"trapline listen: error: {exc}")
        return 2
    beam = Beam(*config.image.beam_deg) if config.image.beam_deg else None

    specs = args.plugin if args.no_console else console_first(args.plugin, config)
    processor = LiveProcessor(args.db, config, scheduler=args.scheduler,
                              plugins=load_plugin_specs(specs, args.db))
    listener = Listener(stream, processor, beam)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        processor.on_stopped = lambda reason: loop.call_soon_threadsafe(listener.stop)
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, listener.stop)
        task = asyncio.create_task(listener.run(args.duration_s))
        started = asyncio.create_task(listener.started.wait())
        await asyncio.wait({task, started}, return_when=asyncio.FIRST_COMPLETED)
        if not listener.started.is_set():
            started.cancel()
            await task  # raises what stopped it
        where = [f"{stream.host}:{p}" for p in listener.ports] + list(args.connect)
        print(f"trapline listen: receiving on {', '.join(where)}", flush=True)
        await task

    started_at = time.monotonic()
    asyncio.run(main())
    elapsed = time.monotonic() - started_at
    summary = processor.summary
    print(f"trapline listen: listened for {elapsed:.1f} s")
    if summary is not None:
        summary.seconds = elapsed
        print(summary.report())
    # Strict JSON: a quantile of no samples is null, not NaN.
    metrics = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
               for k, v in listener.metrics.as_dict().items()}
    print("stream: " + json.dumps(metrics, sort_keys=True, allow_nan=False))
    failed = listener.metrics.processing_errors or (summary is not None and summary.failed)
    return 1 if failed else 0
