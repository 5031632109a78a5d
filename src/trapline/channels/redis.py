"""Channels on Redis Streams: consumer groups, acknowledgements, replay after a restart.

Why Redis Streams rather than NATS JetStream (both run here):

- the pipeline and its plug-ins are synchronous code; redis-py has a synchronous
  client, whereas nats-py is asyncio only and would need an event loop in a thread
  around every call;
- everything the channels need is one command each, on a data structure that can be
  inspected with ``redis-cli``: ``XADD ... MAXLEN ~`` (bounded log), ``XGROUP CREATE
  MKSTREAM``, ``XREADGROUP`` (``0`` replays this consumer's unacknowledged messages,
  ``>`` reads new ones), ``XACK``, ``XAUTOCLAIM`` (takes over the messages of a consumer
  that died) and ``XPENDING`` (delivery counts, monitoring);
- one small server that many sites already run, with no stream/consumer configuration
  to declare beforehand: a group is created on a consumer's first read.

Keys are ``{prefix}:{channel}``; each entry holds the msgpack record (field ``r``,
:mod:`trapline.channels.codec`) and the JSON headers (field ``h``).

Outages: while the server cannot be reached, ``publish`` keeps messages in a bounded
:class:`~trapline.channels.outbox.Outbox` (memory, then a spool file) and publishes them
in order when the server is back; reads return nothing and acknowledgements are left
for later (the messages stay pending and are delivered again). Attempts are spaced with
a doubling backoff. What a restarted server still holds depends on its persistence
(RDB or AOF): without it, messages not yet consumed at the restart are gone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import redis as redis_lib
from redis.backoff import NoBackoff
from redis.retry import Retry

from trapline.channels import codec
from trapline.channels.base import Broker, Message, Pending, Undecodable
from trapline.channels.outbox import Outbox

__all__ = ["RedisBroker"]

log = logging.getLogger(__name__)
T = TypeVar("T")
# The server is unreachable (refused, reset, timed out, loading its data after a restart).
_DOWN = (redis_lib.ConnectionError, redis_lib.TimeoutError)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class RedisBroker(Broker):
    """Channels as Redis streams.

    ``url``: ``redis://host:port/db``. ``maxlen``: approximate bound of each stream
    (``XADD MAXLEN ~``): consumers further behind than this lose the oldest messages.
    ``claim_idle_s``: messages unacknowledged by a consumer for this long are taken
    over by the next consumer of its group that reads. ``start``: where a new group
    starts, ``"0"`` (the whole stream held) or ``"$"`` (only messages published from
    now on).

    Outages (see the module docstring): ``buffer_mb`` of messages are held in memory,
    more in a spool file in ``spool_dir`` (default: the temporary folder), at most
    ``buffer_max_mb`` in all (then ``publish`` waits for the server); attempts to reach
    the server are spaced from 0.5 s doubling up to ``retry_max_s``; :meth:`close` waits
    up to ``drain_s`` for the buffered messages to be published. Each of these can be
    given in the URL's query too (``redis://host:6379/0?buffer_mb=16&spool_dir=/var/x``).
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "trapline",
                 maxlen: int = 100_000, claim_idle_s: float = 60.0, start: str = "0",
                 buffer_mb: float = 64.0, buffer_max_mb: float = 1024.0,
                 spool_dir: str | None = None, retry_max_s: float = 30.0,
                 drain_s: float = 300.0, client: redis_lib.Redis | None = None):
        self.url = url
        self.prefix = prefix
        self.maxlen = int(maxlen)
        self.claim_idle_s = float(claim_idle_s)
        self.start = start
        # No retries inside redis-py: outages are handled here, without blocking.
        self.client = client or redis_lib.Redis.from_url(
            url, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2.0, socket_timeout=10.0)
        self._groups: set[tuple[str, str]] = set()
        self.outbox = Outbox(int(float(buffer_mb) * 2**20), int(float(buffer_max_mb) * 2**20),
                             spool_dir)
        self.retry_max_s = float(retry_max_s)
        self.drain_s = float(drain_s)
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._backoff = 0.5
        self.published_late = 0  # messages published from the outbox

    # -- outages -------------------------------------------------------------------------

    @property
    def down(self) -> bool:
        """The last attempt to reach the server failed."""
        return self._down_since is not None

    def _failed(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._down_since is None:
            self._down_since = now
            self._backoff = 0.5
        log.warning("broker %s unreachable (%s): %d messages buffered (%.1f MB, %d in the "
                    "spool file); next attempt in %.1f s", self.url, exc, len(self.outbox),
                    self.outbox.nbytes / 2**20, self.outbox.spooled, self._backoff)
        self._retry_at = now + self._backoff
        self._backoff = min(2 * self._backoff, self.retry_max_s)

    def _reached(self) -> None:
        if self._down_since is not None:
            log.warning("broker %s back after %.1f s", self.url,
                        time.monotonic() - self._down_since)
        self._down_since = None

    def _waiting(self) -> bool:
        """Down, and the next attempt is not due yet."""
        return self.down and time.monotonic() < self._retry_at

    def _try(self, call: Callable[[], T], default: T) -> T:
        """``call()``, or ``default`` when the server is unreachable (or is being left
        alone until the next attempt)."""
        if self._waiting():
            return default
        try:
            value = call()
        except _DOWN as exc:
            self._failed(exc)
            return default
        self._reached()
        return value

    def flush(self) -> bool:
        """Publish buffered messages, in order; True when none are left."""
        if not len(self.outbox):
            return True
        if self._waiting():
            return False
        n = len(self.outbox)
        try:
            while len(self.outbox):
                channel, fields = self.outbox.peek()
                self._xadd(channel, fields)
                self.outbox.pop()
                self.published_late += 1
        except _DOWN as exc:
            self._failed(exc)
            return False
        self._reached()
        log.warning("broker %s: published the %d buffered messages", self.url, n)
        return True

    def __repr__(self) -> str:
        return f"RedisBroker({self.url!r}, prefix={self.prefix!r})"

    def key(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    def close(self) -> None:
        """Publish what is buffered (waiting up to ``drain_s`` for the server), then
        close the connections."""
        deadline = time.monotonic() + self.drain_s
        while not self.flush() and time.monotonic() < deadline:
            time.sleep(max(0.05, min(self._retry_at, deadline) - time.monotonic()))
        if len(self.outbox):
            log.error("broker %s unreachable for %.0f s: %d buffered messages not published",
                      self.url, self.drain_s, len(self.outbox))
        self.outbox.close()
        self.client.close()

    def _xadd(self, channel: str, fields: Mapping[str, Any]) -> str:
        return _text(self.client.xadd(self.key(channel), dict(fields), maxlen=self.maxlen,
                                      approximate=True))

    def publish(self, channel: str, record: Any, headers: Mapping[str, str] | None = None) -> str:
        """Append to the channel's stream; while the server is unreachable, to the
        outbox (returns ``"buffered"``), waiting for the server when that is full."""
        fields = {"r": codec.encode(record), "h": json.dumps(dict(headers or {}))}
        if self.flush():  # nothing buffered before this one: publish it directly
            try:
                message_id = self._xadd(channel, fields)
            except _DOWN as exc:
                self._failed(exc)
            else:
                self._reached()
                return message_id
        while self.outbox.full() and not self.flush():
            log.warning("broker %s: buffer full (%.0f MB): waiting for the server",
                        self.url, self.outbox.nbytes / 2**20)
            time.sleep(max(0.05, self._retry_at - time.monotonic()))
        self.outbox.append(channel, fields)
        self.flush()  # the server may be back already
        return "buffered"

    def ensure_group(self, channel: str, group: str) -> None:
        """Create the group (and the stream) if needed; left to the first read when
        the server is unreachable."""
        self._try(lambda: self._ensure_group(channel, group), None)

    def _ensure_group(self, channel: str, group: str) -> None:
        if (channel, group) in self._groups:
            return
        try:
            self.client.xgroup_create(self.key(channel), group, id=self.start, mkstream=True)
        except redis_lib.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add((channel, group))

    def read(self, channel: str, group: str, consumer: str, *, count: int = 10,
             block_s: float = 0.0) -> list[Message]:
        """See :meth:`Broker.read`; nothing while the server is unreachable (waiting
        ``block_s`` at most for the next attempt). ``block_s`` must stay below the
        10 s socket timeout, past which the server counts as unreachable."""
        if self.down and block_s > 0:
            time.sleep(max(0.0, min(block_s, self._retry_at - time.monotonic())))
        self.flush()
        return self._try(lambda: self._read_group(channel, group, consumer, count, block_s), [])

    def _read_group(self, channel: str, group: str, consumer: str, count: int,
                    block_s: float) -> list[Message]:
        try:
            return self._read(channel, group, consumer, count, block_s)
        except redis_lib.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream was deleted meanwhile, or the server restarted without its data.
            self._groups.discard((channel, group))
            return self._read(channel, group, consumer, count, block_s)

    def _read(self, channel: str, group: str, consumer: str, count: int,
              block_s: float) -> list[Message]:
        self._ensure_group(channel, group)
        key = self.key(channel)
        # 1. this consumer's own unacknowledged messages (replay after a restart)
        own = self.client.xreadgroup(group, consumer, {key: "0"}, count=count)
        entries = own[0][1] if own else []
        replayed = self._messages(channel, group, entries, redelivered=True)
        if replayed or entries:
            return replayed
        # 2. messages of consumers idle for too long (dead)
        idle_ms = int(self.claim_idle_s * 1000)
        claimed = self.client.xautoclaim(key, group, consumer, idle_ms, "0-0", count=count)
        if claimed[1]:
            return self._messages(channel, group, claimed[1], redelivered=True)
        # 3. new messages
        block = int(block_s * 1000) if block_s > 0 else None
        new = self.client.xreadgroup(group, consumer, {key: ">"}, count=count, block=block)
        return self._messages(channel, group, new[0][1] if new else [], redelivered=False)

    def _messages(self, channel: str, group: str, entries: list,
                  redelivered: bool) -> list[Message]:
        key = self.key(channel)
        counts: dict[str, int] = {}
        if redelivered and entries:
            first, last = _text(entries[0][0]), _text(entries[-1][0])
            for p in self.client.xpending_range(key, group, first, last, len(entries) + 10):
                counts[_text(p["message_id"])] = int(p["times_delivered"])
        out = []
        for raw_id, fields in entries:
            msg_id = _text(raw_id)
            if not fields:  # trimmed from the stream while pending: nothing to deliver
                self.client.xack(key, group, msg_id)
                continue
            headers = json.loads(fields.get(b"h", b"{}"))
            try:
                record = codec.decode(fields[b"r"])
            except (codec.CodecError, KeyError) as exc:
                record = Undecodable(str(exc), fields.get(b"r", b""))
            out.append(Message(channel, group, msg_id, record, headers,
                               counts.get(msg_id, 1)))
        return out

    def ack(self, message: Message) -> None:
        """Acknowledge; while the server is unreachable the message stays pending and
        is delivered again (handlers are idempotent)."""
        self._try(lambda: self.client.xack(self.key(message.channel), message.group,
                                           message.id), None)

    def pending(self, channel: str, group: str) -> Pending:
        self._ensure_group(channel, group)
        info = self.client.xpending(self.key(channel), group)
        consumers = {_text(c["name"]): int(c["pending"]) for c in info.get("consumers") or []}
        return Pending(int(info["pending"]), consumers)

    def length(self, channel: str) -> int:
        return int(self.client.xlen(self.key(channel)))

    def delete(self, *channels: str) -> None:
        """Remove channels with their groups (tests, resets)."""
        if channels:
            self.client.delete(*(self.key(c) for c in channels))
        self._groups = {g for g in self._groups if g[0] not in channels}
