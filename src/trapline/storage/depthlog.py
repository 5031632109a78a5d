"""The depth map's journal: one row per image, folded into ``sky_depth`` now and then.

An image's depth changes (tens of thousands of cells for the first images of a field,
a few thousand later) used to be upserted row by row in its transaction, which made
them the largest part of storing an image. They are now appended to ``sky_depth_log``
as one packed row (a single insert, whatever the number of cells) in the image's own
transaction, so nothing is lost if the run stops. A writer (:class:`DepthJournal`)
also keeps the journal rows it knows of merged in memory (those an earlier process
left, read at its first write, then its own), so that once it knows of
``CHECKPOINT_IMAGES`` rows it starts a :class:`Fold` without reading anything back (an
all-sky run's first 200 images journal ~8 changes per cell: 200 MB for two 2300x2300
bands, which took 1.3 s to read and merge). The following image writes carry the fold
into ``sky_depth`` (lowest limit, highest worst limit per band and cell) a slice at a
time, deleting the journal rows it came from with the last slice. Spread so, a fold
adds a few milliseconds to each of at most ``FOLD_IMAGES`` writes instead of a stall to
one.
Resuming reads ``sky_depth`` and fewer than ``CHECKPOINT_IMAGES + FOLD_IMAGES`` journal
rows per writer: bounded work, however long the run.

Folding is idempotent (min and max) and deletes exactly the rows it read, so a fold cut
short (the process stopped) is simply done again, and several writers (sky partitions,
listeners) may fold concurrently without loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import Connection, delete, insert, select

from trapline.records import DepthUpdates
from trapline.storage import models
from trapline.storage.writer import upsert_depth

LOG = models.SkyDepthLog.__table__

# Journal rows kept before they are folded into sky_depth.
CHECKPOINT_IMAGES = 200
# A fold is carried by at most this many image writes, at least FOLD_MIN_CELLS each.
FOLD_IMAGES = 50
FOLD_MIN_CELLS = 2000

_PACKED = np.dtype([("band", "<i8"), ("cell", "<i8"), ("limit", "<f8"), ("worst", "<f8")])


def merge_depth(depth: DepthUpdates) -> DepthUpdates:
    """One row per (band, cell), sorted: the lowest limit and highest worst limit
    (NaN limits dropped; a NaN worst counts as missing)."""
    band, cell = np.asarray(depth.band, dtype=np.int64), np.asarray(depth.cell, dtype=np.int64)
    limit, worst = np.asarray(depth.limit, dtype=float), np.asarray(depth.worst, dtype=float)
    ok = np.isfinite(limit)
    if not ok.all():
        band, cell, limit, worst = band[ok], cell[ok], limit[ok], worst[ok]
    if not len(band):
        return DepthUpdates(band=band, cell=cell, limit=limit, worst=worst)
    # One sort key: HEALPix cells are below 12 * 4**20 < 2**44, bands small and >= 0.
    key = (band << 44) | cell
    order = np.argsort(key)  # unstable is fine: a group's order does not change min/max
    key, limit, worst = key[order], limit[order], worst[order]
    starts = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    key = key[starts]
    return DepthUpdates(band=key >> 44, cell=key & ((1 << 44) - 1),
                        limit=np.minimum.reduceat(limit, starts),
                        worst=np.fmax.reduceat(worst, starts))


def pack(depth: DepthUpdates) -> bytes:
    packed = np.empty(len(depth), dtype=_PACKED)
    for name in _PACKED.names:
        packed[name] = getattr(depth, name)
    return packed.tobytes()


def unpack(payloads: list[bytes]) -> DepthUpdates:
    packed = np.frombuffer(b"".join(payloads), dtype=_PACKED)
    return DepthUpdates(**{name: packed[name].copy() for name in _PACKED.names})


def append(conn: Connection, depth: DepthUpdates, image_id: int) -> int | None:
    """Journal one image's depth changes (already merged per band and cell); the new
    row's id, None when there was nothing to journal."""
    if not len(depth):
        return None
    stmt = insert(LOG).returning(LOG.c.log_id)
    row = {"image_id": image_id, "n_cells": len(depth), "payload": pack(depth)}
    return int(conn.execute(stmt, row).scalar_one())


def _empty() -> DepthUpdates:
    return DepthUpdates(band=np.zeros(0, dtype=np.int64), cell=np.zeros(0, dtype=np.int64),
                        limit=np.zeros(0), worst=np.zeros(0))


def merge_into(into: DepthUpdates, new: DepthUpdates, in_place: bool = False) -> DepthUpdates:
    """``into`` and ``new`` (each one row per band and cell, sorted, as from
    :func:`merge_depth`) merged. When ``new`` has no cell ``into`` lacks (the usual
    case once a field has been seen), the lowest and highest limits are taken by
    position, in ``into``'s own arrays if ``in_place``; else a full merge."""
    if not len(new):
        return into
    if not len(into):
        return new
    held = (into.band << 44) | into.cell
    at = np.minimum(np.searchsorted(held, (new.band << 44) | new.cell), len(held) - 1)
    if not np.array_equal(held[at], (new.band << 44) | new.cell):
        return merge_depth(DepthUpdates(**{n: np.concatenate([getattr(into, n), getattr(new, n)])
                                           for n in DepthUpdates.names()}))
    out = into if in_place else DepthUpdates(**{n: getattr(into, n).copy()
                                                for n in DepthUpdates.names()})
    out.limit[at] = np.minimum(out.limit[at], new.limit)
    out.worst[at] = np.fmax(out.worst[at], new.worst)
    return out


def _read(conn: Connection) -> tuple[list[int], DepthUpdates]:
    """The journal's row ids and its changes, merged."""
    rows = conn.execute(select(LOG.c.log_id, LOG.c.payload).order_by(LOG.c.log_id)).all()
    return [log_id for log_id, _ in rows], merge_depth(unpack([p for _, p in rows]))


def pending(conn: Connection) -> DepthUpdates:
    """The journal's changes, merged (empty when it has been folded)."""
    return _read(conn)[1]


@dataclass(frozen=True)
class Fold:
    """A fold in progress: the journal rows read, their merged changes, and how many of
    those (in order) are already in sky_depth."""

    log_ids: list[int]
    merged: DepthUpdates
    done: int = 0

    @property
    def slice_cells(self) -> int:
        return max(FOLD_MIN_CELLS, -(-len(self.merged) // FOLD_IMAGES))


def start_fold(conn: Connection) -> Fold | None:
    """Read and merge the journal (None when it is empty)."""
    log_ids, merged = _read(conn)
    return Fold(log_ids, merged) if log_ids else None


def fold_step(conn: Connection, fold: Fold, n_cells: int | None = None) -> Fold | None:
    """Upsert the fold's next ``n_cells`` (default ``fold.slice_cells``) into sky_depth;
    with the last of them, delete the journal rows it came from. Returns the fold
    still to do (a new object: ``fold`` is unchanged, so a rolled-back transaction
    leaves the caller's fold as it was), or None when done."""
    stop = min(len(fold.merged), fold.done + (n_cells or fold.slice_cells))
    upsert_depth(conn, fold.merged.rows(slice(fold.done, stop)))
    if stop < len(fold.merged):
        return replace(fold, done=stop)
    # Exactly the rows read: one journalled by a concurrent writer meanwhile stays.
    conn.execute(delete(LOG).where(LOG.c.log_id.in_(fold.log_ids)))
    return None


@dataclass
class _Known:
    """Journal rows a writer knows of and has not folded, with their changes merged."""

    log_ids: list[int]
    merged: DepthUpdates


class DepthJournal:
    """One writer's side of the journal: appends an image's changes, starts and
    carries the folds, keeping what it journalled since its last fold merged in memory.

    ``write`` works inside the image's transaction and returns the update of this
    object's memory, to be applied once the transaction has committed (a rolled-back
    write leaves it as it was)."""

    def __init__(self) -> None:
        self._known: _Known | None = None  # read at the first write
        self.fold: Fold | None = None

    def write(self, conn: Connection, depth: DepthUpdates, image_id: int) -> Callable[[], None]:
        known = self._known or _Known(*_read(conn))
        changes = merge_depth(depth)
        log_id = append(conn, changes, image_id)
        log_ids = known.log_ids + ([] if log_id is None else [log_id])
        fold = self.fold
        # Counted per writer, so that every writer folds what it wrote (by image id,
        # a writer that never got a multiple of CHECKPOINT_IMAGES would never fold).
        starting = fold is None and len(log_ids) >= CHECKPOINT_IMAGES
        if starting:
            fold = Fold(log_ids, merge_into(known.merged, changes))
        if fold is not None:
            fold = fold_step(conn, fold)

        def committed() -> None:
            self.fold = fold
            self._known = (_Known([], _empty()) if starting
                           else _Known(log_ids, merge_into(known.merged, changes, in_place=True)))

        return committed

    def finish(self, conn: Connection) -> None:
        """Carry a fold in progress to its end in one go (when the writer stops)."""
        if self.fold is not None:
            fold_step(conn, self.fold, len(self.fold.merged))


def checkpoint(conn: Connection) -> int:
    """Fold the whole journal into sky_depth now and empty it; returns the number of
    cells written."""
    fold = start_fold(conn)
    if fold is None:
        return 0
    fold_step(conn, fold, len(fold.merged))
    return len(fold.merged)
