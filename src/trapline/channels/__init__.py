"""Publish/subscribe channels between the pipeline's stages and its plug-ins.

``open_broker(None)`` is the embedded in-process broker; ``open_broker("redis://...")``
the Redis Streams broker shared between processes and machines.
"""

from __future__ import annotations

from trapline.channels.base import (
    ALERTS,
    CANDIDATES,
    CHANNELS,
    DEADLETTER,
    DETECTIONS,
    IMAGES,
    MEASUREMENTS,
    RESULTS,
    Broker,
    Message,
    Pending,
    Undecodable,
)
from trapline.channels.memory import MemoryBroker
from trapline.channels.publish import ImageColumns, publish_result
from trapline.errors import TraplineError, install_hint

__all__ = [
    "ALERTS", "CANDIDATES", "CHANNELS", "DEADLETTER", "DETECTIONS", "IMAGES", "MEASUREMENTS",
    "RESULTS", "Broker", "ImageColumns", "MemoryBroker", "Message", "Pending", "Undecodable",
    "open_broker", "publish_result",
]


# RedisBroker options that a broker URL's query may set.
_REDIS_OPTIONS = ("prefix", "maxlen", "claim_idle_s", "buffer_mb", "buffer_max_mb",
                  "spool_dir", "retry_max_s", "drain_s")


def open_broker(url: str | None = None, **options) -> Broker:
    """A broker from a URL: None or ``memory://`` embedded, ``redis://`` or
    ``rediss://`` Redis Streams, ``?prefix=NAME`` naming its streams and the other
    options of :class:`~trapline.channels.redis.RedisBroker` (e.g. ``buffer_mb``,
    ``spool_dir``) in the query too (``options`` go to the broker's constructor).

    Raises:
        TraplineError: an unknown scheme, or ``redis://`` without the redis package.
    """
    if url is None or url.startswith("memory:"):
        return MemoryBroker(**options)
    if url.startswith(("redis://", "rediss://", "unix://")):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        try:
            from trapline.channels.redis import RedisBroker
        except ImportError as exc:
            raise TraplineError(install_hint("the Redis broker", "redis", exc)) from None

        # ``?prefix=NAME`` names the streams (several pipelines on one server); the
        # other options of RedisBroker may be given in the query too.
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        for name in set(query) & set(_REDIS_OPTIONS):
            options.setdefault(name, query.pop(name))
        url = urlunsplit(parts._replace(query=urlencode(query)))
        return RedisBroker(url, **options)
    raise TraplineError(f"unknown broker URL {url!r}: use memory:// or redis://HOST:PORT/DB")
