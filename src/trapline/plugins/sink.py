"""What the alert sinks (console, files, webhook, email) share: they consume the
``alerts`` channel (the alerter's output; the host adds an alerter when none runs with
them), declare their options once, and -- for those that deliver over the network --
send from a background thread with retries, exponential backoff and a dead-letter
file, so the pipeline never waits on a slow or failing server."""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from trapline.alerts.record import Alert
from trapline.alerts.voevent import to_voevent
from trapline.channels.base import ALERTS
from trapline.plugins.base import BasePlugin, Configurable, Option

__all__ = ["DELIVERY_OPTIONS", "VOEVENT_OPTIONS", "AlertSink", "DeliveringSink", "GiveUp",
           "Retry"]

log = logging.getLogger(__name__)

VOEVENT_OPTIONS = {
    "authority": Option("trapline.local", "IVORN authority of the VOEvent packets: "
                                          "ivo://AUTHORITY/trapline#ALERT_ID"),
    "role": Option("observation", "VOEvent role: observation, test or utility"),
}

DELIVERY_OPTIONS = {
    "retries": Option(4, "attempts after a failure that may pass (server errors, "
                         "connection errors, rate limits)"),
    "backoff_s": Option(1.0, "wait before the first retry (s), doubled after each"),
    "max_backoff_s": Option(60.0, "longest wait between attempts (s)"),
    "deadletter": Option("", "JSON-lines file of the alerts not delivered after the "
                             "retries (default: NAME-deadletter.jsonl here)"),
    "max_queue": Option(10000, "alerts waiting for delivery at most; more go straight to "
                               "the dead-letter file"),
}


class AlertSink(Configurable, BasePlugin):
    """A plug-in that consumes the ``alerts`` channel, with options in ``OPTIONS``."""

    channels = (ALERTS,)

    def voevent_packet(self, alert: Alert) -> str:
        """The alert's VOEvent 2.0 packet, with this sink's ``authority`` and ``role``."""
        return to_voevent(alert, authority=self.authority, role=self.role)


class Retry(Exception):
    """A delivery failure that may pass; ``after_s``: the wait the server asked for."""

    def __init__(self, reason: str, after_s: float | None = None):
        super().__init__(reason)
        self.after_s = after_s


class GiveUp(Exception):
    """A delivery failure that retrying will not mend (e.g. HTTP 400, SMTP 550)."""


_STOP = object()


class DeliveringSink(AlertSink):
    """An alert sink whose :meth:`send` goes over the network, run in a background
    thread: the first attempt, then up to ``retries`` more after ``backoff_s``,
    ``2*backoff_s``, ... (at most ``max_backoff_s``) while :meth:`send` raises
    :class:`Retry`. An alert that still fails, or raises :class:`GiveUp`, is appended
    to the dead-letter file as ``{"time", "sink", "error", "alert"}``. Once an alert has
    used all its retries the server is taken to be down and later alerts get one
    attempt each until one succeeds, so an outage neither stalls the queue nor makes
    ``close`` wait for long. ``close`` delivers what is queued.

    The alert message is acknowledged when queued: an alert queued when the process is
    killed is lost (``trapline consume`` resends nothing); failures are in the
    dead-letter file."""

    OPTIONS: ClassVar[dict[str, Option]] = DELIVERY_OPTIONS

    def __init__(self, **options: Any):
        super().__init__(**options)
        self.deadletter_path = Path(self.deadletter or f"{self.name}-deadletter.jsonl")
        self.delivered = 0
        self.dead = 0
        self._down = False
        self._queue: queue.Queue = queue.Queue()
        self._lock = threading.Lock()  # the dead-letter file is written from two threads
        self._thread: threading.Thread | None = None

    def send(self, alert: Alert) -> None:  # pragma: no cover - abstract
        """Deliver one alert; raise :class:`Retry` or :class:`GiveUp` on failure."""
        raise NotImplementedError

    def handle(self, alert: Alert) -> None:
        if self._queue.qsize() >= self.max_queue:
            self._dead(alert, f"more than {self.max_queue} alerts waiting for delivery")
            return
        if self._thread is None:
            # Not a daemon: at exit the queue is delivered even if close() was not called.
            self._thread = threading.Thread(target=self._work, name=f"trapline-{self.name}")
            self._thread.start()
        self._queue.put(alert)

    def _work(self) -> None:
        while True:
            try:
                alert = self._queue.get(timeout=0.2)
            except queue.Empty:
                if not threading.main_thread().is_alive():
                    return
                continue
            if alert is _STOP:
                return
            self._deliver(alert)

    def _deliver(self, alert: Alert) -> None:
        attempts = 1 if self._down else 1 + self.retries
        wait = self.backoff_s
        for attempt in range(1, attempts + 1):
            try:
                self.send(alert)
            except Retry as exc:
                error = str(exc)
                if attempt < attempts:
                    log.warning("%s: alert %s: %s; retrying", self.name, alert.alert_id, exc)
                    time.sleep(min(wait if exc.after_s is None else exc.after_s,
                                   self.max_backoff_s))
                    wait = min(2 * wait, self.max_backoff_s)
                    continue
                self._down = True
            except GiveUp as exc:
                error = str(exc)
            except Exception as exc:  # noqa: BLE001 - a bug must not stop later alerts
                log.exception("%s: alert %s failed", self.name, alert.alert_id)
                error = f"{type(exc).__name__}: {exc}"
            else:
                self._down = False
                self.delivered += 1
                return
            break
        self._dead(alert, error)

    def _dead(self, alert: Alert, error: str) -> None:
        log.error("%s: alert %s not delivered (%s); written to %s", self.name,
                  alert.alert_id, error, self.deadletter_path)
        line = json.dumps({"time": datetime.now(UTC).isoformat(timespec="seconds"),
                           "sink": self.name, "error": error, "alert": alert.to_dict()})
        with self._lock:
            self.dead += 1
            self.deadletter_path.parent.mkdir(parents=True, exist_ok=True)
            with self.deadletter_path.open("a") as f:
                f.write(line + "\n")

    def close(self) -> None:
        """Deliver what is queued (each alert's retries included), then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
