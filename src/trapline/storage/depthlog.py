"""The depth map's journal: one row per image, folded into ``sky_depth`` now and then.

An image's depth changes (tens of thousands of cells for the first images of a field,
a few thousand later) used to be upserted row by row in its transaction, which made
them the largest part of storing an image. They are now appended to ``sky_depth_log``
as one packed row (a single insert, whatever the number of cells) in the image's own
transaction, so nothing is lost if the run stops; at every ``CHECKPOINT_IMAGES``-th
image id the journal is folded into ``sky_depth`` (lowest limit, highest worst limit
per band and cell) and emptied. Resuming reads ``sky_depth`` and the fewer than
``CHECKPOINT_IMAGES`` journal rows: bounded work, however long the run.

Folding is idempotent (min and max) and deletes exactly the rows it read, so several
writers (sky partitions, listeners) may fold concurrently without loss.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection, delete, insert, select

from trapline.pipeline.records import DepthUpdates
from trapline.storage import models

LOG = models.SkyDepthLog.__table__

# Journal rows kept before they are folded into sky_depth.
CHECKPOINT_IMAGES = 200

_PACKED = np.dtype([("band", "<i8"), ("cell", "<i8"), ("limit", "<f8"), ("worst", "<f8")])


def merge_depth(depth: DepthUpdates) -> DepthUpdates:
    """One row per (band, cell), sorted: the lowest limit and highest worst limit
    (NaN limits dropped; a NaN worst counts as missing)."""
    band, cell = np.asarray(depth.band, dtype=np.int64), np.asarray(depth.cell, dtype=np.int64)
    limit, worst = np.asarray(depth.limit, dtype=float), np.asarray(depth.worst, dtype=float)
    ok = np.isfinite(limit)
    band, cell, limit, worst = band[ok], cell[ok], limit[ok], worst[ok]
    if not len(band):
        return DepthUpdates(band=band, cell=cell, limit=limit, worst=worst)
    order = np.lexsort((cell, band))
    band, cell, limit, worst = band[order], cell[order], limit[order], worst[order]
    starts = np.flatnonzero(np.r_[True, (band[1:] != band[:-1]) | (cell[1:] != cell[:-1])])
    return DepthUpdates(band=band[starts], cell=cell[starts],
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


def checkpoint(conn: Connection) -> int:
    """Fold the journal into sky_depth and empty it; returns the number of cells
    written."""
    from trapline.storage.writer import upsert_depth

    log_ids, merged = _read(conn)
    if not log_ids:
        return 0
    upsert_depth(conn, merged)
    # Exactly the rows read: one journalled by a concurrent writer meanwhile stays.
    conn.execute(delete(LOG).where(LOG.c.log_id.in_(log_ids)))
    return len(merged)
