"""``trapline export TABLE``: write a stored table as CSV or Parquet."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from trapline.errors import TraplineError
from trapline.storage.export import EXPORTS

if TYPE_CHECKING:
    import pandas as pd
from trapline.storage import default_url, export
from trapline.storage.engine import make_engine, normalise_url


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("table", choices=EXPORTS, help="table to export (bins: the lightcurve bins of "
                   "`trapline compact`)")
    p.add_argument(
        "--db",
        metavar="URL",
        help="database: SQLAlchemy URL or SQLite file (default trapline.sqlite here)",
    )
    p.add_argument(
        "--format",
        choices=["csv", "parquet"],
        help="output format (default csv, or parquet when FILE ends in .parquet)",
    )
    p.add_argument("-o", "--output", metavar="FILE", help="output file (default: CSV to stdout)")


def run(args: argparse.Namespace) -> int:
    fmt = args.format or (
        "parquet" if args.output and Path(args.output).suffix == ".parquet" else "csv"
    )
    if fmt == "parquet" and not args.output:
        raise TraplineError("--format parquet needs an output file: add -o FILE.parquet")
    url = normalise_url(args.db or default_url())
    engine = make_engine(url, must_exist=True)
    try:
        with export.storage_errors(url), engine.connect() as conn:
            chunks = export.iter_chunks(conn, args.table)
            if args.output:
                with open(args.output, "wb") as out:
                    n = _write(chunks, out, fmt)
            else:
                try:
                    sys.stdout.flush()
                    n = _write(chunks, sys.stdout.buffer, fmt)
                    sys.stdout.buffer.flush()
                except BrokenPipeError:  # e.g. `trapline export ... | head`
                    devnull = os.open(os.devnull, os.O_WRONLY)
                    os.dup2(devnull, sys.stdout.fileno())
                    return 0
    finally:
        engine.dispose()
    if args.output:
        print(f"wrote {n} {args.table} rows to {args.output}", file=sys.stderr)
    return 0


def _write(chunks: Iterable[pd.DataFrame], sink: BinaryIO, fmt: str) -> int:
    """Write DataFrame chunks as one CSV or Parquet file with pyarrow (CSV: header
    once, full float precision, empty fields for missing values); returns the rows."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    n = 0
    writer = schema = None
    try:
        for frame in chunks:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            if writer is None:
                schema = table.schema
                if fmt == "parquet":
                    writer = pq.ParquetWriter(sink, schema)
                else:
                    sink.write((",".join(schema.names) + "\n").encode())  # names unquoted
                    options = pa_csv.WriteOptions(include_header=False, quoting_style="needed")
                    writer = pa_csv.CSVWriter(sink, schema, write_options=options)
            writer.write_table(table.cast(schema))
            n += len(frame)
    finally:
        if writer is not None:
            writer.close()
    return n
