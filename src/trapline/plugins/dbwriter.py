"""The database writer: stores each ImageResult of the ``results`` channel."""

from __future__ import annotations

import json
import logging

from trapline.channels.base import RESULTS, Message
from trapline.plugins.base import BasePlugin, PluginContext, database_group
from trapline.records import ImageResult
from trapline.storage import Store

__all__ = ["DBWriter", "STATE_HEADER"]

log = logging.getLogger(__name__)
STATE_HEADER = "state"  # header: JSON object of pipeline_state values to store with the image


class DBWriter(BasePlugin):
    """Writes results with :meth:`trapline.storage.Store.write`, one transaction per image,
    with the pipeline state carried in the message's ``state`` header.

    ``url`` (default: the host's database) or an open ``store``. A result whose image is
    stored already is skipped by the store, so a message delivered twice (a consumer
    that stopped after writing but before acknowledging) writes nothing twice. A
    :class:`~trapline.storage.errors.StorageError` propagates: the message is not
    acknowledged and comes again."""

    name = "dbwriter"
    channels = (RESULTS,)

    def __init__(self, url: str | None = None, store=None, upgrade: bool = True):
        self.url = url
        self.store = store
        self.upgrade = upgrade
        self._own_store = False
        self.written = 0
        self.skipped = 0

    def start(self, context: PluginContext) -> None:
        super().start(context)
        if self.store is None:
            self.store = Store(self.url or context.db_url)
            self._own_store = True
            if self.upgrade:
                self.store.upgrade()
        # One group per database: writers to other databases get every result too.
        self.group = database_group(self.name, self.store.url)

    def handle_message(self, message: Message) -> None:
        state = message.headers.get(STATE_HEADER)
        self.write(message.record, json.loads(state) if state else None)

    def handle(self, record: ImageResult) -> None:
        self.write(record, None)

    def write(self, result: ImageResult, state: dict[str, str] | None) -> int | None:
        if self.store is None:
            raise RuntimeError("DBWriter has no store: give url= or start it in a host")
        image_id = self.store.write(result, state=state)
        if image_id is None:
            self.skipped += 1
            log.info("image %s already stored", result.image.image_key)
        else:
            self.written += 1
        return image_id

    def close(self) -> None:
        if self._own_store and self.store is not None:
            self.store.close()
