"""What the pipeline needs to resume a run, read in time proportional to the number
of sources (never the number of measurements)."""

from __future__ import annotations

import numpy as np
from sqlalchemy import Connection, select

from trapline.records import (
    BandStatistics,
    Columns,
    DepthUpdates,
    Flagged,
    MonitorEntry,
    SourceStates,
    StoredState,
)
from trapline.storage import depthlog, models

_INT_COLUMNS = {"source_id", "band", "n", "n_blind", "n_forced", "misses", "cell"}


def _read_columns(conn: Connection, model, cls: type[Columns], order_by) -> Columns:
    """Read ``cls``'s columns from ``model``'s table into numpy arrays."""
    names = cls.names()
    table = model.__table__
    result = conn.execute(select(*(table.c[n] for n in names)).order_by(*order_by))
    values = list(zip(*result, strict=True)) or [() for _ in names]
    arrays = {}
    for name, column in zip(names, values, strict=True):
        if name in _INT_COLUMNS:
            arrays[name] = np.array(column, dtype=np.int64)
        elif name == "is_monitor":
            arrays[name] = np.array(column, dtype=bool)
        else:  # NULL -> NaN
            arrays[name] = np.array(column, dtype=float)
    return cls(**arrays)


def load_state(conn: Connection) -> StoredState:
    """Read the resumable state of the run stored on ``conn``. Image rows are not read:
    a re-run image is found by its key when it comes (``Store.has_image``)."""
    s, b, d = models.Source, models.BandStatistics, models.SkyDepth
    # The depth map: sky_depth plus the journal not yet folded into it (bounded).
    stored = _read_columns(conn, d, DepthUpdates, [d.band, d.cell])
    journal = depthlog.pending(conn)
    both = {n: np.concatenate([getattr(stored, n), getattr(journal, n)])
            for n in DepthUpdates.names()}
    depth = depthlog.merge_depth(DepthUpdates(**both))
    monitors = [
        MonitorEntry(*row)
        for row in conn.execute(
            select(
                models.Monitor.monitor_id,
                models.Monitor.name,
                models.Monitor.ra,
                models.Monitor.dec,
                models.Monitor.source_id,
                models.Monitor.added_mjd,
            ).order_by(models.Monitor.monitor_id)
        )
    ]
    values = dict(conn.execute(select(models.PipelineState.key, models.PipelineState.value)).all())
    c = models.Candidate
    pairs = conn.execute(select(c.source_id, c.band).where(c.kind == "variable").distinct()).all()
    flagged = Flagged(source_id=np.array([p[0] for p in pairs], dtype=np.int64),
                      band=np.array([p[1] for p in pairs], dtype=np.int64))
    return StoredState(
        sources=_read_columns(conn, s, SourceStates, [s.source_id]),
        statistics=_read_columns(conn, b, BandStatistics, [b.source_id, b.band]),
        depth=depth,
        monitors=monitors,
        values=values,
        flagged=flagged,
    )
