"""``trapline serve --db URL``: the web interface and JSON API of a stored run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trapline.commands import listening_socket, port_number
from trapline.errors import TraplineError, install_hint
from trapline.storage import default_url
from trapline.storage.engine import normalise_url


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="[NAME=]URL", action="append", default=None,
                   help="database: SQLAlchemy URL or SQLite file (default trapline.sqlite "
                        "here); give it several times to serve several runs (one per "
                        "database), each under /runs/NAME/ (NAME: the file's or database's "
                        "name unless given)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=port_number, default=8000, help="port (default 8000)")
    p.add_argument("--token", default=None,
                   help="token needed to change the monitoring list (default: the "
                        "TRAPLINE_TOKEN environment variable; none: read only)")
    p.add_argument("--image-root", metavar="FOLDER", default=None,
                   help="folder that relative image paths start from (databases written "
                        "before paths were stored absolute: the folder the run started in)")
    p.add_argument("--log-level", default="info",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (default info)")


def run(args: argparse.Namespace) -> int:
    try:
        import uvicorn

        from trapline.web import create_app, create_runs_app
    except ImportError as exc:
        raise TraplineError(install_hint("the web interface", "web", exc)) from None

    token = args.token or os.environ.get("TRAPLINE_TOKEN") or None
    runs = run_names(args.db or [default_url()])
    if len(runs) == 1:
        app = create_app(next(iter(runs.values())), token, use_env_token=False,
                         image_root=args.image_root)
    else:
        app = create_runs_app(runs, token, image_root=args.image_root)
    # Bound here rather than by uvicorn, so a port in use is a one-line error.
    sock = listening_socket(args.host, args.port)
    where = f"http://{args.host}:{args.port}/"
    if len(runs) > 1:
        where += f" ({len(runs)} runs: " + ", ".join(f"/runs/{n}/" for n in runs) + ")"
    writes = "monitoring list writable with the token" if token else "read only (no token)"
    print(f"trapline serve: {where} ({writes})", file=sys.stderr)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level)
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def run_names(specs: list[str]) -> dict[str, str]:
    """``[NAME=]URL`` specs to ``{name: url}``; a name defaults to the SQLite file's stem
    or the database's name; a name given twice is an error."""
    runs: dict[str, str] = {}
    for spec in specs:
        name, sep, url = spec.partition("=")
        if not sep or "/" in name or ":" in name:
            name, url = "", spec
        if not name:
            parsed = normalise_url(url)
            name = Path(parsed.database or "run").stem
        if name in runs:
            raise TraplineError(f"--db: two runs named {name!r}: give NAME=URL to tell them "
                                "apart")
        runs[name] = url
    return runs
