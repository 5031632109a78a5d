"""The channel interface: stages publish typed records on named channels; consumers read
them in groups, acknowledge what they have handled, and get back what they had not.

Semantics (the same for every implementation):

- ``publish(channel, record, headers)`` appends to the channel's log and returns the
  message id. Logs are bounded: the oldest messages are dropped past ``maxlen``.
- A *group* is one logical consumer (a plug-in): every group sees every message of the
  channel once; the *consumers* of a group (processes, threads) share its messages.
- ``read`` returns, in this order: the messages this consumer was given before and has
  not acknowledged (replay after a restart under the same name), messages of other
  consumers of the group left unacknowledged for longer than ``claim_idle_s`` (a
  consumer that died), then new messages, waiting up to ``block_s`` for them.
- ``ack(message)`` marks a message handled. Acknowledge only after its effect is durable
  (e.g. the database transaction committed): delivery is at least once, so handlers
  must be idempotent (``Store.write`` is, per image_key).
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ALERTS", "CANDIDATES", "CHANNELS", "DEADLETTER", "DETECTIONS", "IMAGES", "MEASUREMENTS",
    "RESULTS", "Broker", "Message", "Pending", "Undecodable",
]

# The pipeline's channels and what they carry.
RESULTS = "results"            # ImageResult: everything decided for one image (storage)
IMAGES = "images"              # ImageRecord: metadata and quality control of one image
DETECTIONS = "detections"      # ImageColumns of Measurements: blind detections only
MEASUREMENTS = "measurements"  # ImageColumns of Measurements: blind, forced, monitor
CANDIDATES = "candidates"      # ImageColumns of Candidates: new sources and variables
ALERTS = "alerts"              # Alert: a candidate with its position and recent lightcurve
DEADLETTER = "deadletter"      # DeadLetter: messages a consumer failed on repeatedly
CHANNELS = (RESULTS, IMAGES, DETECTIONS, MEASUREMENTS, CANDIDATES, ALERTS, DEADLETTER)


@dataclass(frozen=True)
class Message:
    """One delivered message. ``deliveries`` counts deliveries to the group (1 the first
    time, more when replayed or claimed after a consumer failed to acknowledge)."""

    channel: str
    group: str
    id: str
    record: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    deliveries: int = 1


@dataclass(frozen=True)
class Undecodable:
    """The record of a message that could not be decoded (never given to a plug-in)."""

    error: str
    data: bytes


@dataclass(frozen=True)
class Pending:
    """Messages of a group delivered but not acknowledged, per consumer."""

    count: int
    consumers: Mapping[str, int]


class Broker(ABC):
    """A set of named channels (see the module docstring for the semantics)."""

    @abstractmethod
    def publish(self, channel: str, record: Any, headers: Mapping[str, str] | None = None) -> str:
        """Append a record to a channel; returns the message id."""

    @abstractmethod
    def ensure_group(self, channel: str, group: str) -> None:
        """Create the group at the start of the channel's log if it does not exist (a
        group's first read does this too)."""

    @abstractmethod
    def read(self, channel: str, group: str, consumer: str, *, count: int = 10,
             block_s: float = 0.0) -> list[Message]:
        """Up to ``count`` messages for ``consumer`` of ``group`` (creating the group at
        the start of the channel's log if it does not exist): its own unacknowledged
        ones first, then those of dead consumers, then new ones (waiting ``block_s``)."""

    @abstractmethod
    def ack(self, message: Message) -> None:
        """Mark a message handled by its group."""

    @abstractmethod
    def pending(self, channel: str, group: str) -> Pending:
        """The group's delivered but unacknowledged messages."""

    @abstractmethod
    def length(self, channel: str) -> int:
        """Messages currently held in the channel's log."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def subscribe(self, channel: str, group: str, consumer: str, *, block_s: float = 1.0,
                  stop: threading.Event | None = None, idle_exit: bool = False,
                  ) -> Iterator[Message]:
        """Iterate over the group's messages for ``consumer`` until ``stop`` is set (or,
        with ``idle_exit``, until a read returns nothing). The caller acks each one."""
        while stop is None or not stop.is_set():
            batch = self.read(channel, group, consumer, block_s=block_s)
            if not batch and idle_exit:
                return
            yield from batch
