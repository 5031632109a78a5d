"""The files sink: alerts as JSON lines and VOEvent 2.0 files, in one folder per day."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any, ClassVar

from trapline.alerts.record import Alert, iso_time
from trapline.plugins.base import Option
from trapline.plugins.sink import VOEVENT_OPTIONS, AlertSink

__all__ = ["FilesSink"]


class FilesSink(AlertSink):
    """Writes each alert to ``directory/YYYY-MM-DD/alerts-YYYY-MM-DD.jsonl`` (one
    :meth:`~trapline.alerts.Alert.to_json` line per alert) and, with ``voevent``, to
    ``directory/YYYY-MM-DD/ALERT_ID.xml``; the date is the UTC date of the alert's image,
    so a night's alerts rotate into the next folder at 00:00 UTC.

    Delivery is at least once: an alert whose id is already in its day's file (a
    replay) is not written again, and its VOEvent file is rewritten whole."""

    name = "files"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "directory": Option("alerts", "folder of the daily alert folders"),
        "voevent": Option(True, "also write one VOEvent 2.0 XML file per alert"),
        **VOEVENT_OPTIONS,
    }

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.root = Path(self.directory)
        self.written = 0
        self._day = ""
        self._file: IO[str] | None = None
        self._ids: set[str] = set()

    def day_folder(self, day: str) -> Path:
        """The folder of a UTC date (``YYYY-MM-DD``)."""
        return self.root / day

    def _open(self, day: str) -> IO[str]:
        if day != self._day or self._file is None:
            self.close()
            folder = self.day_folder(day)
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / f"alerts-{day}.jsonl"
            # the ids already written that day, to drop repeats of a replay
            self._ids = ({json.loads(line)["alert_id"] for line in path.open() if line.strip()}
                         if path.exists() else set())
            self._file = path.open("a")
            self._day = day
        return self._file

    def handle(self, alert: Alert) -> None:
        day = iso_time(alert.time_mjd)[:10]
        out = self._open(day)
        if self.voevent:
            path = self.day_folder(day) / f"{alert.alert_id}.xml"
            tmp = path.with_suffix(".xml.tmp")
            tmp.write_text(self.voevent_packet(alert))
            os.replace(tmp, path)  # never a half-written packet
        if alert.alert_id not in self._ids:
            out.write(alert.to_json() + "\n")
            out.flush()
            self._ids.add(alert.alert_id)
            self.written += 1

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
