"""The pipeline's handle on the database: one transaction per image, resumable state."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TypeVar

from sqlalchemy import delete, select
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from trapline.records import DepthUpdates, ImageResult, concat
from trapline.storage import depthlog, migrate, models, writer
from trapline.storage.engine import default_url, describe, make_engine, normalise_url
from trapline.storage.errors import StorageError, StorageFull, is_disk_full
from trapline.storage.rows import UNIX_EPOCH_MJD
from trapline.storage.state import StoredState, load_state

log = logging.getLogger(__name__)
T = TypeVar("T")


class Store:
    """Storage of one pipeline run in a SQLite file or a PostgreSQL database.

    ``url`` is a SQLAlchemy URL (``postgresql://`` uses psycopg 3) or a bare file path
    (SQLite); None means :func:`default_url`. A failed operation on a lost connection
    is retried ``retries`` times, waiting ``backoff_s`` doubled each time, then raises
    :class:`StorageError`.
    """

    def __init__(self, url: str | URL | None = None, *, retries: int = 3, backoff_s: float = 0.25):
        self.url = normalise_url(url or default_url())
        self.engine = make_engine(self.url)
        self.retries = retries
        self.backoff_s = backoff_s
        self._depth = depthlog.DepthJournal()

    def __repr__(self) -> str:
        return f"Store({describe(self.url)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Finish a depth journal fold in progress (a resume would otherwise find up to
        ``FOLD_IMAGES`` more journal rows, harmless but avoidable), release the
        connections."""
        journal, self._depth = self._depth, depthlog.DepthJournal()
        if journal.fold is not None:
            try:
                self._retry("fold the sky depth journal into", lambda: self._finish(journal))
            except StorageError as exc:
                log.warning("%s; the next run folds it", exc)
        self.engine.dispose()

    def _finish(self, journal: depthlog.DepthJournal) -> None:
        with self.engine.begin() as conn:
            journal.finish(conn)

    def upgrade(self) -> None:
        """Create or upgrade the schema to the newest revision (safe at every start)."""
        self._retry("upgrade the schema of", lambda: migrate.upgrade(self.engine))

    def revision(self) -> str | None:
        """The schema revision of the database, None when empty."""
        return self._retry("read the revision of", lambda: migrate.current_revision(self.engine))

    def has_image(self, image_key: str) -> bool:
        """Whether an image with this key is stored."""
        stmt = select(models.Image.image_id).where(models.Image.image_key == image_key).limit(1)

        def run() -> bool:
            with self.engine.connect() as conn:
                return conn.execute(stmt).first() is not None

        return self._retry("query", run)

    def write(self, result: ImageResult, state: Mapping[str, str] | None = None) -> int | None:
        """Store one image's result in one transaction; returns its image_id.

        Returns None, writing nothing, when the image_key is already stored (a re-run).
        ``state`` optionally sets pipeline_state values in the same transaction (e.g.
        the next source id, so that it always matches the stored sources). The
        transaction also carries the depth journal's fold a slice further."""

        def run() -> int | None:
            with self.engine.begin() as conn:
                image_id = writer.write_result(conn, result, state)
                if image_id is None:
                    return None
                committed = self._depth.write(conn, result.depth, image_id)
            committed()
            return image_id

        return self._retry(f"write image {result.image.image_key!r} to", run)

    def write_timestep(self, results: Sequence[ImageResult],
                       state: Mapping[str, str] | None = None) -> list[int | None]:
        """Store a timestep's results (the images of one time) in one transaction, so a
        timestep is either stored whole or not at all; returns their image_ids (None for
        images stored already). The depth changes go into one journal row."""

        def run() -> list[int | None]:
            committed = None
            with self.engine.begin() as conn:
                ids = [writer.write_result(conn, r, None) for r in results]
                if state:
                    writer.set_state(conn, state)
                stored = [(r, i) for r, i in zip(results, ids, strict=True) if i is not None]
                if stored:
                    depth = concat(DepthUpdates, [r.depth for r, _ in stored])
                    committed = self._depth.write(conn, depth, stored[-1][1])
            if committed is not None:
                committed()
            return ids

        keys = ", ".join(repr(r.image.image_key) for r in results[:2])
        more = f" and {len(results) - 2} more" if len(results) > 2 else ""
        return self._retry(f"write image {keys}{more} to", run)

    def checkpoint_depth(self) -> int:
        """Fold the whole sky depth journal into sky_depth now (writing does it a slice
        at a time, after every ``depthlog.CHECKPOINT_IMAGES`` images it journalled);
        returns the number of cells written. Resuming reads both, so this is never
        needed for correctness."""

        def run() -> int:
            with self.engine.begin() as conn:
                return depthlog.checkpoint(conn)

        n = self._retry("fold the sky depth journal into", run)
        self._depth = depthlog.DepthJournal()  # what it knew of is folded too
        return n

    def load_state(self) -> StoredState:
        """What the pipeline needs to resume: sources, statistics, depth, monitors..."""

        def run() -> StoredState:
            with self.engine.connect() as conn:
                return load_state(conn)

        return self._retry("load the state from", run)

    def recent_images(self, per_band: int) -> list[tuple[str, float, float]]:
        """(path, flux scale, flux modulation) of the newest ``per_band`` accepted images
        of each band with a path, oldest first (what a resumed run re-reads into its
        precovery buffer)."""
        image = models.Image

        def run() -> list[tuple[str, float, float]]:
            with self.engine.connect() as conn:
                bands = conn.execute(select(image.band).where(image.accepted)
                                     .distinct()).scalars().all()
                rows = []
                for band in bands:
                    rows += conn.execute(
                        select(image.time_mjd, image.path, image.flux_scale,
                               image.flux_modulation)
                        .where(image.accepted, image.band == band, image.path != "")
                        .order_by(image.time_mjd.desc()).limit(per_band)).all()
            return [(path, 1.0 if scale is None else float(scale),
                     0.0 if modulation is None else float(modulation))
                    for _, path, scale, modulation in sorted(rows)]

        return self._retry("read the newest images of", run) if per_band > 0 else []

    def write_monitor(self, name: str, ra: float, dec: float, source_id: int | None = None) -> int:
        """Add a position (deg) to the monitoring list; returns its monitor_id."""
        row = {
            "name": name,
            "ra": float(ra),
            "dec": float(dec),
            "source_id": source_id,
            "added_mjd": time.time() / 86400.0 + UNIX_EPOCH_MJD,
        }
        table = models.Monitor.__table__

        def run() -> int:
            with self.engine.begin() as conn:
                return int(conn.execute(table.insert().returning(table.c.monitor_id), row).one()[0])

        return self._retry("add a monitor to", run)

    def remove_monitor(self, monitor_id: int) -> bool:
        """Remove a monitoring-list entry; False if there was none with this id."""
        stmt = delete(models.Monitor).where(models.Monitor.monitor_id == monitor_id)

        def run() -> bool:
            with self.engine.begin() as conn:
                return conn.execute(stmt).rowcount > 0

        return self._retry("remove a monitor from", run)

    def set_state(self, key: str, value: str) -> None:
        """Set one pipeline_state value."""

        def run() -> None:
            with self.engine.begin() as conn:
                writer.set_state(conn, {key: value})

        self._retry("save state to", run)

    def _retry(self, what: str, fn: Callable[[], T]) -> T:
        """Run ``fn``, retrying on OperationalError (connection lost, database locked)
        with exponential backoff; database errors become StorageError, a full disk
        StorageFull at once (never retried)."""
        where = describe(self.url)
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except (SQLAlchemyError, OSError) as exc:
                if is_disk_full(exc):  # retrying cannot help: stop the run promptly
                    raise StorageFull(
                        f"disk full writing to database {where} (cannot {what} it: "
                        f"{_reason(exc)}); free space and re-run: the run resumes where "
                        "it stopped"
                    ) from exc
                if isinstance(exc, OSError):
                    raise
                if not isinstance(exc, OperationalError):
                    raise StorageError(
                        f"cannot {what} database {where}: {_reason(exc)}", transient=False
                    ) from exc
                if attempt == self.retries:
                    raise StorageError(
                        f"cannot {what} database {where}: still failing after "
                        f"{_attempts(self.retries + 1)}: {_reason(exc)}",
                        transient=True,
                    ) from exc
                wait = self.backoff_s * 2**attempt
                log.warning("database %s: %s; retrying in %.2g s", where, _reason(exc), wait)
                time.sleep(wait)
        raise AssertionError("unreachable")


def _attempts(n: int) -> str:
    return f"{n} attempt" if n == 1 else f"{n} attempts"


def _reason(exc: BaseException) -> str:
    """The driver's message, first line only."""
    orig = exc.orig if isinstance(exc, DBAPIError) else exc
    text = str(orig).strip().splitlines()
    return text[0] if text else type(orig).__name__
