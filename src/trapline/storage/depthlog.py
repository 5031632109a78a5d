"""The depth map's journal: one row per image, folded into ``sky_depth`` now and then.

An image's depth changes (tens of thousands of cells for the first images of a field,
a few thousand later) used to be upserted row by row in its transaction, which made
them the largest part of storing an image. They are now appended to ``sky_depth_log``
as one packed row (a single insert, whatever the number of cells) in the image's own
transaction, so nothing is lost if the run stops. At every ``CHECKPOINT_IMAGES``-th
image id the journal is read and merged into a :class:`Fold`, which the following image
writes carry into ``sky_depth`` (lowest limit, highest worst limit per band and cell) a
slice at a time, deleting the journal rows it read with the last slice. Spread so, a
fold adds a few milliseconds to each of at most ``FOLD_IMAGES`` writes instead of a
quarter of a second to one (a stall in a live stream). Resuming reads ``sky_depth`` and
fewer than ``CHECKPOINT_IMAGES + FOLD_IMAGES`` journal rows: bounded work, however long
the run.

Folding is idempotent (min and max) and deletes exactly the rows it read, so a fold cut
short (the process stopped) is simply done again, and several writers (sky partitions,
listeners) may fold concurrently without loss.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from sqlalchemy import Connection, delete, insert, select

from trapline.pipeline.records import DepthUpdates
from trapline.storage import models

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


def append(conn: Connection, depth: DepthUpdates, image_id: int) -> None:
    """Journal one image's depth changes (already merged per band and cell)."""
    if len(depth):
        conn.execute(insert(LOG), {"image_id": image_id, "n_cells": len(depth),
                                   "payload": pack(depth)})


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
    from trapline.storage.writer import upsert_depth

    stop = min(len(fold.merged), fold.done + (n_cells or fold.slice_cells))
    upsert_depth(conn, fold.merged.rows(slice(fold.done, stop)))
    if stop < len(fold.merged):
        return replace(fold, done=stop)
    # Exactly the rows read: one journalled by a concurrent writer meanwhile stays.
    conn.execute(delete(LOG).where(LOG.c.log_id.in_(fold.log_ids)))
    return None


def after_write(conn: Connection, fold: Fold | None, image_id: int) -> Fold | None:
    """What an image's write (image id ``image_id``) does for folding, in its own
    transaction: start a fold at every ``CHECKPOINT_IMAGES``-th id, carry the one in
    progress a slice further. Returns the fold still to do."""
    if fold is None and image_id % CHECKPOINT_IMAGES == 0:
        fold = start_fold(conn)
    return fold_step(conn, fold) if fold is not None else None


def checkpoint(conn: Connection) -> int:
    """Fold the whole journal into sky_depth now and empty it; returns the number of
    cells written."""
    fold = start_fold(conn)
    if fold is None:
        return 0
    fold_step(conn, fold, len(fold.merged))
    return len(fold.merged)
