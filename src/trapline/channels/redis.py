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
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import redis as redis_lib

from trapline.channels import codec
from trapline.channels.base import Broker, Message, Pending, Undecodable

__all__ = ["RedisBroker"]


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
    """

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "trapline",
                 maxlen: int = 100_000, claim_idle_s: float = 60.0, start: str = "0",
                 client: redis_lib.Redis | None = None):
        self.url = url
        self.prefix = prefix
        self.maxlen = maxlen
        self.claim_idle_s = claim_idle_s
        self.start = start
        self.client = client or redis_lib.Redis.from_url(url)
        self._groups: set[tuple[str, str]] = set()

    def __repr__(self) -> str:
        return f"RedisBroker({self.url!r}, prefix={self.prefix!r})"

    def key(self, channel: str) -> str:
        return f"{self.prefix}:{channel}"

    def close(self) -> None:
        self.client.close()

    def publish(self, channel: str, record: Any, headers: Mapping[str, str] | None = None) -> str:
        fields = {"r": codec.encode(record), "h": json.dumps(dict(headers or {}))}
        return _text(self.client.xadd(self.key(channel), fields, maxlen=self.maxlen,
                                      approximate=True))

    def ensure_group(self, channel: str, group: str) -> None:
        """Create the group (and the stream) if needed."""
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
        try:
            return self._read(channel, group, consumer, count, block_s)
        except redis_lib.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._groups.discard((channel, group))  # the stream was deleted meanwhile
            return self._read(channel, group, consumer, count, block_s)

    def _read(self, channel: str, group: str, consumer: str, count: int,
              block_s: float) -> list[Message]:
        self.ensure_group(channel, group)
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
        self.client.xack(self.key(message.channel), message.group, message.id)

    def pending(self, channel: str, group: str) -> Pending:
        self.ensure_group(channel, group)
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
