"""The webhook sink: each alert as an HTTP POST of JSON, as Slack and Mattermost
incoming webhooks take it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from email.message import Message
from typing import Any, ClassVar
from urllib.parse import urlsplit

from trapline.alerts.record import Alert
from trapline.alerts.text import alert_line
from trapline.plugins.base import Option
from trapline.plugins.sink import DELIVERY_OPTIONS, DeliveringSink, GiveUp, Retry
from trapline.version import __version__

__all__ = ["WebhookSink", "webhook_body"]


def webhook_body(alert: Alert, base_url: str = "", key: str = "alert") -> dict:
    """``{"text": the alert's line, key: the alert as JSON data}``: Slack and Mattermost
    show ``text`` and ignore the other keys."""
    return {"text": alert_line(alert, base_url), key: alert.to_dict()}


def _retry_after(headers: Message | None) -> float | None:
    """The seconds of a ``Retry-After`` header (None if absent or a date)."""
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class WebhookSink(DeliveringSink):
    """POSTs :func:`webhook_body` of each alert to ``url``. Server errors (5xx), 429
    (Too Many Requests, honouring ``Retry-After``), timeouts and connection errors are
    retried with backoff; other 4xx answers are not (the request is wrong: the alert
    goes to the dead-letter file at once)."""

    name = "webhook"
    OPTIONS: ClassVar[dict[str, Option]] = {
        "url": Option("", "the webhook's URL (http:// or https://); required"),
        "base_url": Option("", "URL of the run's web server: the text links to the source"),
        "key": Option("alert", "key of the structured alert in the JSON body"),
        "timeout_s": Option(10.0, "time allowed for one request (s)"),
        **DELIVERY_OPTIONS,
    }

    def __init__(self, **options: Any):
        super().__init__(**options)
        if urlsplit(self.url).scheme not in ("http", "https"):
            raise ValueError(f"needs url=http(s)://..., got {self.url!r}")

    def send(self, alert: Alert) -> None:
        body = json.dumps(webhook_body(alert, self.base_url, self.key)).encode()
        request = urllib.request.Request(
            self.url, data=body, method="POST",
            headers={"Content-Type": "application/json",
                     "User-Agent": f"trapline/{__version__}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise Retry(f"HTTP {exc.code} {exc.reason}", _retry_after(exc.headers)) from exc
            raise GiveUp(f"HTTP {exc.code} {exc.reason}") from exc
        except (urllib.error.URLError, OSError) as exc:  # refused, reset, timed out, DNS
            raise Retry(f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}") from exc
