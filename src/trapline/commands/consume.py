"""``trapline consume --broker URL --plugin NAME ...``: run plug-ins on a shared broker."""

from __future__ import annotations

import argparse
import signal
import threading

from trapline.channels import open_broker
from trapline.commands import add_db_option, load_plugin_specs
from trapline.plugins import PluginHost


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--broker", required=True, metavar="URL",
                   help="the broker the pipeline publishes to, e.g. redis://127.0.0.1:6379/0")
    p.add_argument("--plugin", action="append", required=True, metavar="PLUGIN[:KEY=VALUE,...]",
                   help="plug-in by entry-point name, module:Class or FILE.py[:Class], with "
                        "options; repeatable")
    p.add_argument("--consumer", default="consumer-1",
                   help="consumer name: the same name resumes what a stopped one left")
    add_db_option(p)
    p.add_argument("--once", action="store_true",
                   help="process what is waiting, then exit (default: run until interrupted)")


def run(args: argparse.Namespace) -> int:
    plugins = load_plugin_specs(args.plugin, args.db)
    broker = open_broker(args.broker)
    with PluginHost(broker, plugins, consumer=args.consumer, db_url=args.db) as host:
        if args.once:
            handled = host.drain()
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            host.run(stop)
            handled = None
    if handled is not None:
        print(f"{handled} messages handled by {', '.join(p.name for p in plugins)}")
        if getattr(broker, "down", False):
            print(f"trapline consume: error: broker {args.broker} unreachable: run again "
                  "when it is back (what is left waits in the consumer groups)")
            return 1
    return 1 if host.failures else 0
