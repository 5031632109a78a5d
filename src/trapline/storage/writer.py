"""Writing one ImageResult in one transaction, with bulk statements only.

Every statement touches rows by key (primary key, unique image_key), so the cost of
an image does not grow with the size of the tables. On PostgreSQL the bulk work goes
through COPY (see :mod:`trapline.storage.pgcopy` for the measurements).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from sqlalchemy import Connection, Table, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from trapline.records import DepthUpdates, ImageResult
from trapline.storage import models, pgcopy
from trapline.storage.healpix import healpix_index
from trapline.storage.rows import (
    image_row,
    measurement_columns,
    precovery_columns,
    to_rows,
    to_tuples,
)

IMAGE = models.Image.__table__
SOURCE = models.Source.__table__
SOURCE_FORK = models.SourceFork.__table__
CANDIDATE_STAMP = models.CandidateStamp.__table__
MEASUREMENT = models.Measurement.__table__
BAND_STATISTICS = models.BandStatistics.__table__
CANDIDATE = models.Candidate.__table__
SKY_DEPTH = models.SkyDepth.__table__
PIPELINE_STATE = models.PipelineState.__table__


def _insert(conn: Connection, table: Table):
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"unsupported database {dialect!r}: use SQLite or PostgreSQL")


# From this many rows on, SQLite upserts bypass SQLAlchemy's per-row parameter handling.
BULK_MIN_ROWS = 200


def _use_copy(conn: Connection, n: int) -> bool:
    return conn.dialect.name == "postgresql" and n >= pgcopy.COPY_MIN_ROWS


def insert_image(conn: Connection, result: ImageResult) -> int | None:
    """Insert the image row; its id, or None when ``image_key`` is already stored."""
    stmt = _insert(conn, IMAGE).on_conflict_do_nothing(index_elements=["image_key"])
    row = conn.execute(stmt.returning(IMAGE.c.image_id), image_row(result.image)).first()
    return None if row is None else int(row[0])


Merge = Callable[[Connection, Any, Any], Any]


def least(conn: Connection, old, new):
    """The smaller of two values, ignoring NULL (SQL expression)."""
    if conn.dialect.name == "postgresql":
        return func.least(old, new)
    return func.min(func.coalesce(old, new), func.coalesce(new, old))


def greatest(conn: Connection, old, new):
    """The larger of two values, ignoring NULL (SQL expression)."""
    if conn.dialect.name == "postgresql":
        return func.greatest(old, new)
    return func.max(func.coalesce(old, new), func.coalesce(new, old))


def upsert(
    conn: Connection,
    table: Table,
    columns: Mapping[str, np.ndarray],
    merge: Mapping[str, Merge] | None = None,
) -> None:
    """Insert rows (equal-length columns); where the primary key exists, replace the
    non-key columns, or combine old and new with ``merge[name](conn, old, new)``.
    Keys must be unique within one call."""
    n = len(next(iter(columns.values()))) if columns else 0
    if n == 0:
        return
    keys = {c.name for c in table.primary_key.columns}
    merge = merge or {}

    def update(excluded) -> dict:
        return {
            name: merge[name](conn, table.c[name], excluded[name])
            if name in merge
            else excluded[name]
            for name in columns
            if name not in keys
        }

    if _use_copy(conn, n):
        pgcopy.copy_upsert(conn, table, columns, update)
        return
    key = ("upsert", table.name, tuple(columns), tuple(sorted(merge)))

    def build():
        stmt = _insert(conn, table)
        return stmt.on_conflict_do_update(index_elements=list(keys), set_=update(stmt.excluded))

    execute_many(conn, key, build, columns)


# SQL compiled for the driver, per dialect and statement shape: compiling costs more
# than executing a few hundred rows.
_COMPILED: dict[tuple, tuple[str, list[str]]] = {}


def execute_many(conn: Connection, key: tuple, build: Callable[[], Any],
                 columns: Mapping[str, np.ndarray]) -> None:
    """Run the statement ``build()`` (an insert or upsert; ``key`` names its shape)
    once per row of ``columns``."""
    n = len(next(iter(columns.values())))
    if conn.dialect.name == "sqlite" and n >= BULK_MIN_ROWS:
        # Compile once, then hand plain tuples to the driver: SQLAlchemy's per-row
        # parameter processing costs ~5 us a row, the driver's executemany ~1 us.
        cache_key = (conn.dialect.name, *key)
        if cache_key not in _COMPILED:
            compiled = build().values({name: bindparam(name) for name in columns}).compile(
                dialect=conn.dialect)
            _COMPILED[cache_key] = (str(compiled), list(compiled.positiontup or columns))
        sql, order = _COMPILED[cache_key]
        conn.exec_driver_sql(sql, to_tuples({name: columns[name] for name in order}))
        return
    conn.execute(build(), to_rows(columns))


def write_sources(conn: Connection, result: ImageResult) -> None:
    """Upsert the sources touched by the image, with their HEALPix index."""
    columns = result.sources.as_dict()
    columns["source_id"] = np.asarray(columns["source_id"], dtype=np.int64)
    columns["is_monitor"] = np.asarray(columns["is_monitor"], dtype=bool)
    columns["healpix"] = healpix_index(columns["ra"], columns["dec"])
    upsert(conn, SOURCE, columns)


def write_forks(conn: Connection, result: ImageResult, image_id: int) -> None:
    """Insert the image's one-to-many splits (new lightcurve, parent)."""
    f = result.forks
    if len(f):
        conn.execute(SOURCE_FORK.insert(), to_rows({
            "source_id": np.asarray(f.source_id, dtype=np.int64),
            "parent_id": np.asarray(f.parent_id, dtype=np.int64),
            "image_id": np.full(len(f), image_id, dtype=np.int64)}))


def write_statistics(conn: Connection, result: ImageResult) -> None:
    """Upsert the running statistics per (source, band)."""
    upsert(conn, BAND_STATISTICS, result.statistics.as_dict())


def upsert_depth(conn: Connection, depth: DepthUpdates) -> None:
    """Upsert sky depth per (band, cell), one row per key: keep the lowest ``limit``
    and the highest ``worst`` of the stored and the new values."""
    if not len(depth):
        return
    columns = {"band": depth.band, "cell": depth.cell, "limit": depth.limit,
               "worst": depth.worst}
    upsert(conn, SKY_DEPTH, columns, {"limit": least, "worst": greatest})


def write_candidates(conn: Connection, result: ImageResult, image_id: int) -> None:
    """Insert the image's transient candidates."""
    c = result.candidates
    if len(c) == 0:
        return
    columns = c.as_dict()
    columns["kind"] = np.asarray(c.kind).astype(object)
    columns["level"] = np.asarray(c.level).astype(object)
    columns["image_id"] = np.full(len(c), image_id, dtype=np.int64)
    columns["time_mjd"] = np.full(len(c), result.image.time_mjd, dtype=float)
    conn.execute(CANDIDATE.insert(), to_rows(columns))


def write_measurements(conn: Connection, result: ImageResult, image_id: int) -> str:
    """Insert the measurements; returns the method used: 'copy', 'executemany', 'none'.

    PostgreSQL: binary COPY, ~2-3x faster than executemany (figures in pgcopy).
    SQLite: executemany (~90k rows/s here)."""
    if len(result.measurements) == 0:
        return "none"
    columns = measurement_columns(result, image_id)
    if conn.dialect.name == "postgresql":
        pgcopy.copy_rows(conn, MEASUREMENT, columns)
        return "copy"
    execute_many(conn, ("insert", "measurement", tuple(columns)), MEASUREMENT.insert, columns)
    return "executemany"


def write_precovery(conn: Connection, result: ImageResult) -> None:
    """Insert the precovery points of the image's new sources (on earlier images)."""
    p = result.precovery
    if not len(p):
        return
    keys = sorted(set(p.image_key.tolist()))
    image_ids = dict(conn.execute(select(IMAGE.c.image_key, IMAGE.c.image_id)
                                  .where(IMAGE.c.image_key.in_(keys))).all())
    columns = precovery_columns(result, image_ids)
    if len(columns["source_id"]):
        conn.execute(MEASUREMENT.insert(), to_rows(columns))


def write_stamps(conn: Connection, result: ImageResult) -> None:
    """Insert the cutouts kept with the image's new-source candidates."""
    st = result.stamps
    if len(st):
        conn.execute(CANDIDATE_STAMP.insert(), [
            {"source_id": int(st.source_id[i]), "image_key": str(st.image_key[i]),
             "time_mjd": float(st.time_mjd[i]), "band": int(st.band[i]),
             "label": str(st.label[i]), "size": int(st.size[i]), "pixels": bytes(st.pixels[i])}
            for i in range(len(st))])


def set_state(conn: Connection, values: Mapping[str, str]) -> None:
    """Upsert ``pipeline_state`` values."""
    keys = list(values)
    columns = {
        "key": np.array(keys, dtype=object),
        "value": np.array([str(values[k]) for k in keys], dtype=object),
    }
    upsert(conn, PIPELINE_STATE, columns)


def write_result(
    conn: Connection, result: ImageResult, state: Mapping[str, str] | None = None
) -> int | None:
    """Write one image's result on ``conn`` (the caller owns the transaction).

    Returns the new image_id, or None (and writes nothing) if the image is stored.
    The sky depth changes are the caller's (``depthlog.DepthJournal``)."""
    image_id = insert_image(conn, result)
    if image_id is None:
        return None
    write_sources(conn, result)
    write_measurements(conn, result, image_id)
    write_statistics(conn, result)
    write_candidates(conn, result, image_id)
    write_forks(conn, result, image_id)
    write_precovery(conn, result)
    write_stamps(conn, result)
    if state:
        set_state(conn, state)
    return image_id
