"""The lightcurve compactor: a bounded compaction pass every N stored results."""

from __future__ import annotations

import logging

from trapline.channels.base import RESULTS
from trapline.pipeline.config import PipelineConfig
from trapline.plugins.base import BasePlugin, PluginContext, database_group
from trapline.storage import Store
from trapline.storage.compaction import compact_pass, tiers_from

__all__ = ["Compactor"]

log = logging.getLogger(__name__)


class Compactor(BasePlugin):
    """Calls :func:`trapline.storage.compaction.compact_pass` every ``every`` results
    (default: ``[lightcurves] compact_every_images``). Tiers and limits come from
    ``config`` (a PipelineConfig, default settings if None). A failed pass is logged and
    tried again at the next turn: compaction never holds up the stream."""

    name = "compactor"
    channels = (RESULTS,)

    def __init__(self, url: str | None = None, every: int | None = None,
                 config: PipelineConfig | None = None, store=None):
        self.config = config or PipelineConfig()
        self.every = self.config.lightcurves.compact_every_images if every is None else every
        self.url = url
        self.store = store
        self._own_store = False
        self.seen = 0
        self.rows_deleted = 0

    def start(self, context: PluginContext) -> None:
        super().start(context)
        if self.store is None:
            self.store = Store(self.url or context.db_url)
            self._own_store = True
        # One group per database: writers to other databases get every result too.
        self.group = database_group(self.name, self.store.url)

    def handle(self, record) -> None:
        self.seen += 1
        if self.every and self.seen % self.every == 0:
            self.compact_once()

    def compact_once(self) -> None:
        lc = self.config.lightcurves
        tiers = tiers_from(lc.tiers)
        try:
            done = compact_pass(self.store.engine, tiers, batch_rows=lc.batch_rows,
                                candidate_window_s=lc.candidate_window_s,
                                keep_monitor_raw=lc.keep_monitor_raw)
        except Exception as exc:  # noqa: BLE001 - compaction must never stop the stream
            log.error("compaction pass failed (will retry later): %s", exc)
            return
        self.rows_deleted += done.rows_deleted

    def close(self) -> None:
        if self._own_store and self.store is not None:
            self.store.close()
