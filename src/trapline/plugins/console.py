"""The console sink: one line per alert on standard output, as it is made."""

from __future__ import annotations

import sys
from typing import ClassVar

from trapline.alerts.record import Alert
from trapline.alerts.text import alert_line
from trapline.plugins.base import Option
from trapline.plugins.sink import AlertSink

__all__ = ["ConsoleSink"]


class ConsoleSink(AlertSink):
    """Prints :func:`~trapline.alerts.text.alert_line` of each alert: image time (UTC),
    kind, level, source id, RA/Dec in degrees and sexagesimal, band and frequency, flux,
    significance and, with ``base_url``, the source's page on ``trapline serve``."""

    name = "console"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "base_url": Option("", "URL of the run's web server (trapline serve), e.g. "
                               "http://127.0.0.1:8000: each line links to its source's page"),
    }

    def handle(self, alert: Alert) -> None:
        from tqdm import tqdm

        # tqdm.write keeps the progress bar of 'trapline run' below the lines
        tqdm.write(alert_line(alert, self.base_url), file=sys.stdout)
        sys.stdout.flush()
