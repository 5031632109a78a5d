"""``trapline db upgrade|current``: create/upgrade the database schema, show its revision."""

from __future__ import annotations

import argparse

from trapline.storage import Store, default_url
from trapline.storage.engine import describe, make_engine, normalise_url
from trapline.storage.export import storage_errors
from trapline.storage.migrate import current_revision, head_revision


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["upgrade", "current"], help="what to do")
    p.add_argument(
        "--db",
        metavar="URL",
        help="database: SQLAlchemy URL or SQLite file (default trapline.sqlite here)",
    )


def run(args: argparse.Namespace) -> int:
    url = normalise_url(args.db or default_url())
    if args.action == "upgrade":
        with Store(url, retries=0) as store:
            before = store.revision()
            store.upgrade()
            after = store.revision()
        if before == after:
            print(f"{describe(url)}: already at revision {after} (head)")
        else:
            print(f"{describe(url)}: upgraded {before or 'empty'} -> {after}")
        return 0
    engine = make_engine(url, must_exist=True)  # reading must not create a database
    try:
        with storage_errors(url):
            revision = current_revision(engine)
    finally:
        engine.dispose()
    head = head_revision()
    note = "(head)" if revision == head else f"(head is {head}: run `trapline db upgrade`)"
    print(f"{revision or 'none'} {note}")
    return 0
