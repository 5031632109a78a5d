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
