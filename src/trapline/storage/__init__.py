"""Storage of pipeline results in SQLite or PostgreSQL (schema, migrations, writes, reads).

The database is storage only: the pipeline computes in memory and hands the
:class:`Store` one :class:`~trapline.records.ImageResult` per image.
"""

from trapline.records import MonitorEntry, StoredState
from trapline.storage.engine import default_url
from trapline.storage.errors import StorageError, StorageFull
from trapline.storage.store import Store

__all__ = ["MonitorEntry", "Store", "StorageError", "StorageFull", "StoredState", "default_url"]
