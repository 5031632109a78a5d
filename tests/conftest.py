"""Database fixtures: a SQLite file per test and, when the server is reachable, a
scratch PostgreSQL database per test (created and dropped here).

The server is ``TRAPLINE_TEST_PG`` (a libpq URL of a database to connect to for
CREATE/DROP DATABASE), default ``postgresql://postgres@127.0.0.1:5432/postgres``.
"""

from __future__ import annotations

import os
import uuid

import pytest

PG_ADMIN = os.environ.get("TRAPLINE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@pytest.fixture(scope="session")
def pg_admin():
    """An autocommit psycopg connection to the test server; skips when unreachable."""
    psycopg = pytest.importorskip("psycopg", reason="psycopg 3 is not installed")
    try:
        conn = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        first = (str(exc).strip().splitlines() or ["?"])[0]
        pytest.skip(f"PostgreSQL server not reachable at {PG_ADMIN}: {first}")
    yield conn
    conn.close()


@pytest.fixture
def postgresql_url(pg_admin):
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    from psycopg import conninfo, sql

    name = f"trapline_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    pg_admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = conninfo.conninfo_to_dict(PG_ADMIN)
    user = info.get("user", "postgres")
    host = info.get("host", "127.0.0.1")
    port = info.get("port", 5432)
    try:
        yield f"postgresql://{user}@{host}:{port}/{name}"
    finally:
        pg_admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


@pytest.fixture
def sqlite_url(tmp_path):
    """URL of a new SQLite file in the test's temporary folder."""
    return f"sqlite:///{tmp_path / 'trapline.sqlite'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request):
    """An empty database: SQLite, then PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


def upgraded_store(url: str):
    """A Store on ``url`` upgraded to the newest schema, closed afterwards."""
    from trapline.storage import Store

    with Store(url) as store:
        store.upgrade()
        yield store


@pytest.fixture
def store(db_url):
    """A Store on an empty database (SQLite, then PostgreSQL) at the newest schema."""
    yield from upgraded_store(db_url)


@pytest.fixture
def pg_store(postgresql_url):
    """A Store on an empty PostgreSQL database at the newest schema."""
    yield from upgraded_store(postgresql_url)



@pytest.fixture
def redis_prefix():
    """A fresh key prefix on the test Redis server, its keys deleted after the test;
    skips when the server cannot be reached."""
    from helpers import REDIS_URL

    redis = pytest.importorskip("redis")
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        pytest.skip(f"Redis not reachable at {REDIS_URL}: {exc}")
    prefix = f"trapline-test-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        keys = client.keys(f"{prefix}*")
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def private_redis(tmp_path):
    """A redis-server of this test's own (see helpers.PrivateRedis), stopped after."""
    import shutil

    from helpers import PrivateRedis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed")
    server = PrivateRedis(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
