"""Counters of the stream listener: a dataclass, as a dict, a log line and Prometheus text."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass, field

import numpy as np

# Stages timed per timestep (seconds): waiting for its bands and in the queue,
# processing (measure, decide, store), and the whole way from arrival to stored.
STAGES = ("wait", "processing", "latency")
RECENT = 1000  # quantiles over the last this many timesteps


@dataclass
class StreamMetrics:
    """What the listener received, decoded, rejected, dropped and processed.

    ``rejected`` counts messages and images refused, by reason (protocol errors such as
    ``truncated``, ``oversized``, ``too_slow`` (past the message deadline) or
    ``memory_budget``, and image errors such as ``no_wcs``); ``dropped``
    counts images lost after decoding, by reason (``queue_full``, ``late``,
    ``duplicate``). Nothing is discarded without being counted here and logged.
    """

    connections_opened: int = 0
    connections_closed: int = 0
    connection_errors: int = 0
    connections_refused: int = 0  # past the connection limit
    idle_closed: int = 0  # closed after the idle timeout
    bytes_buffered: int = 0  # of messages being received (the shared memory budget)
    bytes_received: int = 0
    messages_received: int = 0
    images_decoded: int = 0
    rejected: Counter = field(default_factory=Counter)
    dropped: Counter = field(default_factory=Counter)
    timesteps_complete: int = 0
    timesteps_partial: int = 0
    timesteps_dropped: int = 0
    timesteps_processed: int = 0
    images_processed: int = 0
    processing_errors: int = 0
    queue_depth: int = 0
    spool_depth: int = 0  # timesteps waiting in the on-disk spool
    spool_bytes: int = 0
    timesteps_spooled: int = 0  # that ever went to the spool
    stage_seconds: Counter = field(default_factory=Counter)
    stage_count: Counter = field(default_factory=Counter)
    _recent: dict = field(default_factory=lambda: {s: deque(maxlen=RECENT) for s in STAGES},
                          repr=False)

    def observe(self, stage: str, seconds: float) -> None:
        """Time one timestep spent in a stage."""
        self.stage_seconds[stage] += seconds
        self.stage_count[stage] += 1
        self._recent[stage].append(seconds)

    def quantile(self, stage: str, q: float) -> float:
        """Quantile (0-1) of a stage's recent times, NaN before any."""
        recent = self._recent.get(stage)
        return float(np.quantile(np.fromiter(recent, float), q)) if recent else float("nan")

    @property
    def connections_active(self) -> int:
        return self.connections_opened - self.connections_closed

    def as_dict(self) -> dict:
        """A flat, JSON-friendly snapshot."""
        out: dict = {}
        for name, value in vars(self).items():
            if name.startswith("_") or name.startswith("stage_"):
                continue
            out[name] = dict(value) if isinstance(value, Counter) else value
        for stage in STAGES:
            out[f"{stage}_p50_s"] = self.quantile(stage, 0.5)
            out[f"{stage}_p99_s"] = self.quantile(stage, 0.99)
        out["connections_active"] = self.connections_active
        return out

    def log_line(self) -> str:
        d = self
        rej = sum(d.rejected.values())
        drop = sum(d.dropped.values())
        text = (
            f"stream: {d.connections_active} connection(s), {d.messages_received} messages, "
            f"{d.images_decoded} images decoded, {rej} rejected, {drop} dropped; "
            f"timesteps {d.timesteps_complete} complete, {d.timesteps_partial} partial, "
            f"{d.timesteps_processed} processed; queue {d.queue_depth}; spool "
            f"{d.spool_depth} ({d.spool_bytes / 2**20:.1f} MB, {d.timesteps_spooled} spooled "
            "in all)"
        )
        if self.stage_count["latency"]:
            text += (f"; latency p50 {self.quantile('latency', 0.5):.2f} s, "
                     f"p99 {self.quantile('latency', 0.99):.2f} s")
        if rej:
            text += "; rejected " + ", ".join(f"{k} {v}" for k, v in sorted(d.rejected.items()))
        if drop:
            text += "; dropped " + ", ".join(f"{k} {v}" for k, v in sorted(d.dropped.items()))
        return text

    def prometheus(self, prefix: str = "trapline_stream") -> str:
        """The counters in the Prometheus text exposition format (version 0.0.4)."""
        lines: list[str] = []

        def emit(name: str, kind: str, value, labels: str = "") -> None:
            lines.append(f"{prefix}_{name}{labels} {value}")

        gauges = {"queue_depth", "spool_depth", "spool_bytes", "connections_active",
                  "bytes_buffered"}
        for stage in STAGES:
            metric = f"{stage}_seconds"
            lines.append(f"# TYPE {prefix}_{metric} summary")
            for q in (0.5, 0.99):
                value = self.quantile(stage, q)
                if value == value:  # not NaN
                    emit(metric, "summary", value, f'{{quantile="{q}"}}')
            emit(f"{metric}_sum", "summary", self.stage_seconds[stage])
            emit(f"{metric}_count", "summary", self.stage_count[stage])
        for name, value in self.as_dict().items():
            if name.endswith(("_p50_s", "_p99_s")):
                continue
            kind = "gauge" if name in gauges else "counter"
            metric = name if kind == "gauge" else f"{name}_total"
            lines.append(f"# TYPE {prefix}_{metric} {kind}")
            if isinstance(value, dict):
                for reason, count in sorted(value.items()):
                    emit(metric, kind, count, f'{{reason="{reason}"}}')
            else:
                emit(metric, kind, value)
        return "\n".join(lines) + "\n"
