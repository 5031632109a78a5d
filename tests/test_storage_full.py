"""A full disk: a write raises StorageFull at once (never retried), the database stays
intact and holds exactly the images written before. Real full filesystems: a small tmpfs
(needs root; skipped otherwise) for SQLite and for a PostgreSQL tablespace, and SQLite's
``max_page_count`` (runs everywhere)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import event, select
from test_storage import make_result

from trapline.storage import StorageError, StorageFull, Store
from trapline.storage.errors import is_disk_full
from trapline.storage.models import Image

SOURCES_PER_IMAGE = 300


@pytest.fixture
def tmpfs():
    """A 2 MiB tmpfs mounted at a fresh folder in /tmp (which other users, such as the
    PostgreSQL server, can reach), unmounted and removed afterwards."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    where = Path(tempfile.mkdtemp(prefix="trapline-full-"))
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs",
                           str(where)], capture_output=True, text=True)
    if done.returncode:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)
        where.rmdir()


def fill(store: Store, limit: int = 500) -> tuple[list[str], StorageFull, float]:
    """Write images until the store is full: (keys written, the error, its seconds)."""
    written: list[str] = []
    for i in range(limit):
        key = f"image-{i}"
        ids = np.arange(i * SOURCES_PER_IMAGE, (i + 1) * SOURCES_PER_IMAGE) + 1
        start = time.perf_counter()
        try:
            store.write(make_result(key, ids, time_mjd=60000.5 + i / 86400, seed=i))
        except StorageFull as exc:
            return written, exc, time.perf_counter() - start
        written.append(key)
    raise AssertionError(f"{limit} images fitted; the filesystem is not small enough")


def stored_keys(store: Store) -> list[str]:
    with store.engine.connect() as conn:
        return list(conn.execute(select(Image.image_key).order_by(Image.image_id)).scalars())


def check_full(store: Store, written: list[str], error: StorageFull, seconds: float) -> None:
    assert written, "nothing fitted before the disk was full"
    assert seconds < 1.0  # not retried (the retries alone wait 1.75 s)
    message = str(error)
    assert "\n" not in message
    assert message.startswith("disk full writing to database")
    assert f"'image-{len(written)}'" in message and "re-run" in message
    assert isinstance(error, StorageError) and not error.transient
    assert stored_keys(store) == written


def sqlite_integrity(path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def test_sqlite_on_a_full_filesystem(tmpfs):
    path = tmpfs / "run.sqlite"
    store = Store(str(path), backoff_s=0.25)
    store.upgrade()
    written, error, seconds = fill(store)
    check_full(store, written, error, seconds)
    store.close()
    assert sqlite_integrity(path) == "ok"
    with Store(str(path)) as again:  # the rerun sees exactly what was written
        assert stored_keys(again) == written


def test_sqlite_at_its_page_limit(tmp_path):
    path = tmp_path / "run.sqlite"
    store = Store(str(path), backoff_s=0.25)
    store.upgrade()
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]

    @event.listens_for(store.engine, "connect")
    def limit(dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 400}")

    store.engine.dispose()  # new connections get the limit
    written, error, seconds = fill(store)
    check_full(store, written, error, seconds)
    store.close()
    assert sqlite_integrity(path) == "ok"


def test_postgresql_tablespace_on_a_full_filesystem(tmpfs, pg_admin):
    from psycopg import conninfo, sql

    info = conninfo.conninfo_to_dict(pg_admin.info.dsn)
    if info.get("host", "127.0.0.1") not in ("127.0.0.1", "localhost", "::1"):
        pytest.skip("the PostgreSQL server is not on this machine")
    try:
        shutil.chown(tmpfs, "postgres", "postgres")
    except (LookupError, PermissionError) as exc:
        pytest.skip(f"cannot give the tmpfs to the postgres user: {exc}")
    name = f"trapline_full_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
        sql.Identifier(name), sql.Literal(str(tmpfs))))
    try:
        # The catalogs stay on the server's disk; the pipeline's tables go to the tmpfs.
        pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        pg_admin.execute(sql.SQL("ALTER DATABASE {} SET default_tablespace = {}").format(
            sql.Identifier(name), sql.Identifier(name)))
        url = (f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
               f"{info.get('port', 5432)}/{name}")
        store = Store(url, backoff_s=0.25)
        try:
            store.upgrade()
            written, error, seconds = fill(store)
            check_full(store, written, error, seconds)
            assert "could not extend file" in str(error) or "No space left" in str(error)
        finally:
            store.close()
    finally:
        pg_admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))
        pg_admin.execute(sql.SQL("DROP TABLESPACE IF EXISTS {}").format(sql.Identifier(name)))


def test_disk_full_is_recognised_from_errno_and_messages():
    import errno

    assert is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert not is_disk_full(OSError(errno.EACCES, "Permission denied"))
    assert is_disk_full(sqlite3.OperationalError("database or disk is full"))
    assert not is_disk_full(sqlite3.OperationalError("database is locked"))


def test_a_run_onto_a_full_disk_stops_promptly_and_resumes_exactly(tmpfs, tmp_path):
    """Defect: on a full disk the run retried every remaining image (510 s instead of
    6 s). It stops at the first full write with one clear line; freed space, the rerun
    completes the run as an uninterrupted one."""
    import trapline.api
    from trapline.pipeline.config import PipelineConfig
    from trapline.run import run_files
    from trapline.simulate import SimulationConfig, write_series

    series = write_series(SimulationConfig(seed=2, epochs=60, bands=1, size=384, n_steady=90,
                                           n_variable=4, n_transient=2, n_fading=1),
                          tmp_path / "series")
    config = PipelineConfig()
    config.run.workers = 1
    full = tmpfs / "full.sqlite"
    start = time.perf_counter()
    summary = run_files([str(series.out_dir)], str(full), config)
    seconds = time.perf_counter() - start
    assert summary.failed and summary.stopped and "disk full" in summary.stopped
    assert "\n" not in summary.stopped
    assert 0 < summary.accepted < len(series.images)
    assert seconds < 60  # not a retry per remaining image
    with sqlite3.connect(full) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    moved = tmp_path / "moved.sqlite"
    for part in tmpfs.glob("full.sqlite*"):  # "free space": the database (and its WAL)
        shutil.copy(part, tmp_path / part.name.replace("full", "moved"))  # on a disk with room
    again = run_files([str(series.out_dir)], str(moved), config)
    assert not again.failed and again.skipped + again.accepted == len(series.images)
    run_files([str(series.out_dir)], str(tmp_path / "whole.sqlite"), config)
    with trapline.api.open(str(moved)) as a, trapline.api.open(str(tmp_path / "whole.sqlite")) as b:
        assert len(a.measurements()) == len(b.measurements())
        assert len(a.variability()) == len(b.variability())
        key = ["source_id", "time_mjd", "kind"]
        pd.testing.assert_frame_equal(
            a.candidates().drop(columns=["candidate_id", "image_id"]).sort_values(key)
            .reset_index(drop=True),
            b.candidates().drop(columns=["candidate_id", "image_id"]).sort_values(key)
            .reset_index(drop=True))
