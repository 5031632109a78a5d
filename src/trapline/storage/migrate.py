"""Alembic, configured in code: no alembic.ini is needed at run time.

Alembic is imported only when a database is not at the newest revision: checking
that costs one indexed read, and a pipeline that starts on a current database does not
pay Alembic's import time (a third of a second).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, func, inspect, select

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions (a test checks it against Alembic's view).
HEAD_REVISION = "0003"
_VERSION_TABLE = Table("alembic_version", MetaData(), Column("version_num", String(32)))
# Any constant: serialises concurrent upgrades of one PostgreSQL database.
_LOCK_ID = 0x7A1E


def alembic_config(url: str | None = None) -> Config:
    """An Alembic Config pointing at the package's migrations."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if url:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def head_revision() -> str:
    """The newest revision in the package."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision, None for an empty database."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(select(_VERSION_TABLE.c.version_num)).scalar()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Upgrade the schema to ``revision`` in one transaction (a no-op when current).

    SQLite: foreign keys are off meanwhile, so that batch migrations may rebuild a
    referenced table (SQLite ignores the pragma inside a transaction)."""
    if revision in ("head", HEAD_REVISION) and current_revision(engine) == HEAD_REVISION:
        return
    from alembic import command

    cfg = alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            _foreign_keys(conn, False)
        try:
            with conn.begin():
                _lock(conn)
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if sqlite:
                _foreign_keys(conn, True)


def _foreign_keys(conn: Connection, on: bool) -> None:
    conn.exec_driver_sql("PRAGMA foreign_keys=ON" if on else "PRAGMA foreign_keys=OFF")
    conn.commit()


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_LOCK_ID)))
