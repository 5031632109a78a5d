"""The embedded broker: channels as bounded in-process logs, thread safe.

It has the semantics of the Redis broker (groups, acknowledgements, replay of a
consumer's unacknowledged messages, claiming those of a consumer idle too long) within
one process. Records are passed by reference, not serialised: consumers must not
modify them. Nothing survives the process; use :class:`~trapline.channels.redis.RedisBroker`
for consumers in other processes or on other machines.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trapline.channels.base import Broker, Message, Pending

__all__ = ["MemoryBroker"]


@dataclass
class _Delivery:
    consumer: str
    since: float
    deliveries: int


@dataclass
class _Group:
    next_seq: int
    pending: dict[int, _Delivery] = field(default_factory=dict)


@dataclass
class _Log:
    first_seq: int = 1  # sequence number of entries[0]
    entries: deque = field(default_factory=deque)  # (record, headers)
    groups: dict[str, _Group] = field(default_factory=dict)


class MemoryBroker(Broker):
    """In-process channels; each log keeps at most ``maxlen`` messages (oldest dropped,
    like Redis ``MAXLEN``), and drops those that every group of the channel has read and
    acknowledged (so a new group created later sees only what is still held).
    ``claim_idle_s``: unacknowledged messages of a consumer are given to another
    consumer of its group after this long."""

    def __init__(self, maxlen: int = 10_000, claim_idle_s: float = 60.0):
        self.maxlen = maxlen
        self.claim_idle_s = claim_idle_s
        self._logs: dict[str, _Log] = {}
        self._cond = threading.Condition()

    def _log(self, channel: str) -> _Log:
        return self._logs.setdefault(channel, _Log())

    def publish(self, channel: str, record: Any, headers: Mapping[str, str] | None = None) -> str:
        with self._cond:
            log = self._log(channel)
            log.entries.append((record, dict(headers or {})))
            while len(log.entries) > self.maxlen:
                log.entries.popleft()
                log.first_seq += 1
            seq = log.first_seq + len(log.entries) - 1
            self._cond.notify_all()
        return str(seq)

    def _message(self, channel: str, group: str, log: _Log, seq: int,
                 deliveries: int) -> Message | None:
        index = seq - log.first_seq
        if index < 0:
            return None  # dropped from the bounded log
        record, headers = log.entries[index]
        return Message(channel, group, str(seq), record, headers, deliveries)

    def ensure_group(self, channel: str, group: str) -> None:
        with self._cond:
            log = self._log(channel)
            log.groups.setdefault(group, _Group(next_seq=log.first_seq))

    def read(self, channel: str, group: str, consumer: str, *, count: int = 10,
             block_s: float = 0.0) -> list[Message]:
        deadline = time.monotonic() + block_s
        with self._cond:
            log = self._log(channel)
            g = log.groups.setdefault(group, _Group(next_seq=log.first_seq))
            while True:
                out = self._take(channel, group, consumer, log, g, count)
                remaining = deadline - time.monotonic()
                if out or remaining <= 0:
                    return out
                self._cond.wait(remaining)

    def _take(self, channel: str, group: str, consumer: str, log: _Log, g: _Group,
              count: int) -> list[Message]:
        # Like RedisBroker: own unacknowledged messages, else claimed ones, else new ones.
        now = time.monotonic()
        own = [s for s in sorted(g.pending) if g.pending[s].consumer == consumer]
        claimable = [s for s in sorted(g.pending) if g.pending[s].consumer != consumer
                     and now - g.pending[s].since >= self.claim_idle_s]
        for seqs in (own, claimable):
            out: list[Message] = []
            for seq in seqs[:count]:
                d = g.pending[seq]
                d.consumer, d.since, d.deliveries = consumer, now, d.deliveries + 1
                message = self._message(channel, group, log, seq, d.deliveries)
                if message is None:  # dropped from the bounded log
                    del g.pending[seq]
                else:
                    out.append(message)
            if seqs:
                return out
        g.next_seq = max(g.next_seq, log.first_seq)
        last = log.first_seq + len(log.entries)
        out = []
        while len(out) < count and g.next_seq < last:
            seq = g.next_seq
            g.next_seq += 1
            g.pending[seq] = _Delivery(consumer, now, 1)
            message = self._message(channel, group, log, seq, 1)
            assert message is not None
            out.append(message)
        return out

    def ack(self, message: Message) -> None:
        with self._cond:
            log = self._log(message.channel)
            group = log.groups.get(message.group)
            if group is not None:
                group.pending.pop(int(message.id), None)
                self._trim(log)

    @staticmethod
    def _trim(log: _Log) -> None:
        """Drop the entries every group has read and acknowledged (memory stays flat)."""
        done = min(min(g.pending, default=g.next_seq) for g in log.groups.values())
        while log.entries and log.first_seq < done:
            log.entries.popleft()
            log.first_seq += 1

    def pending(self, channel: str, group: str) -> Pending:
        with self._cond:
            g = self._log(channel).groups.get(group)
            consumers: dict[str, int] = {}
            for d in (g.pending.values() if g else ()):
                consumers[d.consumer] = consumers.get(d.consumer, 0) + 1
            return Pending(sum(consumers.values()), consumers)

    def length(self, channel: str) -> int:
        with self._cond:
            return len(self._log(channel).entries)
