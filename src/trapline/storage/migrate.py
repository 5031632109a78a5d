"""Alembic, configured in code: no alembic.ini is needed at run time.

Alembic is imported only when a database is not at the newest revision: checking
that costs one indexed read, and a pipeline that starts on a current database does not
pay Alembic's import time (a third of a second).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
    inspect,
    select,
)

from trapline.storage.models import Base

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest revision in migrations/versions (a test checks it against Alembic's view).
HEAD_REVISION = "0008"
# Alembic's version table, as Alembic creates it (read here, and created for new databases).
_VERSION_TABLE = Table("alembic_version", MetaData(),
                       Column("version_num", String(32), nullable=False),
                       PrimaryKeyConstraint("version_num", name="alembic_version_pkc"))
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


def upgrade(engine: Engine, revision: str = "head", fresh_from_models: bool = True) -> None:
    """Upgrade the schema to ``revision`` in one transaction (a no-op when current).

    An empty database going to the head is created from the models and stamped with
    the head revision (Alembic's recipe for new databases: a test checks that the
    migrations give exactly the models), which spares a new run Alembic's import and
    the replay of every migration. ``fresh_from_models`` False always migrates.

    SQLite: foreign keys are off meanwhile, so that batch migrations may rebuild a
    referenced table (SQLite ignores the pragma inside a transaction)."""
    to_head = revision in ("head", HEAD_REVISION)
    current = current_revision(engine)
    if to_head and current == HEAD_REVISION:
        return
    if to_head and current is None and fresh_from_models and _create_fresh(engine):
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


def _create_fresh(engine: Engine) -> bool:
    """Create the head schema from the models if the database holds none of its tables
    (checked again under the lock); False, creating nothing, otherwise."""
    with engine.begin() as conn:
        _lock(conn)
        if set(inspect(conn).get_table_names()) & (set(Base.metadata.tables) | {"alembic_version"}):
            return False
        Base.metadata.create_all(conn)
        _VERSION_TABLE.create(conn)
        conn.execute(_VERSION_TABLE.insert().values(version_num=HEAD_REVISION))
    return True


def _foreign_keys(conn: Connection, on: bool) -> None:
    conn.exec_driver_sql("PRAGMA foreign_keys=ON" if on else "PRAGMA foreign_keys=OFF")
    conn.commit()


def _lock(conn: Connection) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_LOCK_ID)))
