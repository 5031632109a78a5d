"""Database URLs and engines: SQLite files and PostgreSQL servers."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from trapline.errors import install_hint
from trapline.storage.errors import StorageError

DEFAULT_FILE = "trapline.sqlite"
CONNECT_TIMEOUT_S = 3
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def default_url() -> str:
    """The default database: ``trapline.sqlite`` in the working folder."""
    return f"sqlite:///{Path.cwd() / DEFAULT_FILE}"


def normalise_url(url: str | URL) -> URL:
    """A SQLAlchemy URL from ``url``; a bare file path means SQLite.

    ``postgresql://`` and ``postgres://`` map to the psycopg 3 driver.

    Raises:
        StorageError: not a URL, or a database other than SQLite and PostgreSQL.
    """
    if isinstance(url, URL):
        parsed = url
    elif "://" not in url:
        return make_url(f"sqlite:///{Path(url).expanduser().resolve()}")
    else:
        try:
            parsed = make_url(url)
        except ArgumentError as exc:
            raise StorageError(f"not a database URL: {url!r} ({exc})") from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in SUPPORTED_BACKENDS:
        raise StorageError(f"unsupported database URL {describe(parsed)}: use a SQLite file, "
                           "sqlite:///FILE or postgresql://USER@HOST/DB")
    return parsed


def describe(url: URL) -> str:
    """The URL for messages, password hidden."""
    return url.render_as_string(hide_password=True)


def sqlite_file(url: URL) -> Path | None:
    """The file of a SQLite URL, None for in-memory or other databases."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def make_engine(url: str | URL, must_exist: bool = False) -> Engine:
    """An engine for ``url``: SQLite in WAL mode with foreign keys enforced, or
    PostgreSQL through psycopg 3 with a short connect timeout.

    ``must_exist`` refuses a SQLite file that is not there (readers must not create
    an empty database by mistake)."""
    url = normalise_url(url)
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = sqlite_file(url)
        if path is not None and must_exist and not path.exists():
            raise StorageError(f"no database at {path}")
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    try:
        return create_engine(
            url,
            pool_pre_ping=True,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "trapline"},
        )
    except ImportError as exc:  # the driver: psycopg is an extra
        raise StorageError(install_hint("PostgreSQL", "postgres", exc)) from None


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers (notebooks, web interface) run while the pipeline writes;
    # synchronous=NORMAL is durable across application crashes and much faster.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
