"""PostgreSQL COPY through psycopg 3, inside a SQLAlchemy connection's transaction.

Measured on the local test server (PostgreSQL 15, psycopg 3.3, schema indexes and
foreign keys in place), 10k rows per image, median of 5-6 images:

* measurement insert: binary COPY 55-72k rows/s, text COPY ~38k rows/s, SQLAlchemy
  executemany (psycopg pipeline) 19-30k rows/s: measurements always go in with
  binary COPY (2.5x). Index and foreign-key upkeep dominate: COPY into a bare table
  runs at ~340k rows/s.
* source + band_statistics upsert: COPY into a temporary staging table then one
  ``INSERT ... SELECT ... ON CONFLICT DO UPDATE``: ~115k rows/s against ~33k rows/s
  for executemany of the upsert (3.5x). Below ~200 rows executemany wins (the extra
  statements cost more than they save), hence COPY_MIN_ROWS.

A whole 10k-source image (image, sources, measurements, statistics) takes ~0.35 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sqlalchemy import Column, Connection, MetaData, Table, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError
from sqlalchemy.schema import CreateTable

from trapline.storage.rows import to_tuples

COPY_MIN_ROWS = 200
_staging: dict[str, Table] = {}


def copy_rows(conn: Connection, table: Table, columns: Mapping[str, np.ndarray]) -> None:
    """``COPY table (columns) FROM STDIN (FORMAT BINARY)`` of equal-length columns."""
    import psycopg
    from psycopg import sql

    names = list(columns)
    types = [table.c[name].type.compile(dialect=conn.dialect).lower() for name in names]
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(table.name), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    raw = conn.connection.driver_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types(types)
            for row in to_tuples(columns):
                copy.write_row(row)
    except psycopg.Error as exc:
        # Raise what SQLAlchemy raises for its own statements (OperationalError for a
        # lost connection, IntegrityError...), so callers handle one family of errors.
        lost = bool(raw.closed)
        if lost:
            conn.invalidate()
        raise DBAPIError.instance(
            statement.as_string(None) if not lost else f"COPY {table.name}",
            None,
            exc,
            psycopg.Error,
            connection_invalidated=lost,
            dialect=conn.dialect,
        ) from exc


def staging_table(table: Table) -> Table:
    """A session-local temporary copy of ``table`` (no keys, emptied at each commit)."""
    if table.name not in _staging:
        _staging[table.name] = Table(
            f"trapline_staging_{table.name}",
            MetaData(),
            *(Column(c.name, c.type) for c in table.columns),
            prefixes=["TEMPORARY"],
            postgresql_on_commit="DELETE ROWS",
        )
    return _staging[table.name]


def copy_upsert(
    conn: Connection,
    table: Table,
    columns: Mapping[str, np.ndarray],
    update: Callable[[Any], dict],
) -> None:
    """Upsert by primary key: COPY into a staging table, then one INSERT ... SELECT ...
    ON CONFLICT DO UPDATE SET ``update(excluded)``. Keys must be unique in ``columns``."""
    staging = staging_table(table)
    # Created in the transaction: a rollback removes it, so (re)create every time.
    conn.execute(CreateTable(staging, if_not_exists=True))
    copy_rows(conn, staging, columns)
    names = list(columns)
    stmt = postgresql.insert(table).from_select(names, select(*(staging.c[n] for n in names)))
    keys = [c.name for c in table.primary_key.columns]
    stmt = stmt.on_conflict_do_update(index_elements=keys, set_=update(stmt.excluded))
    conn.execute(stmt)
