"""Shared helpers of the benchmarks: timing, one-core limits, environment line, tables."""

from __future__ import annotations

import contextlib
import gc
import os
import platform
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")

THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")

NOISE_NOTE = "note: shared, noisy machine: medians and same-run ratios count, single runs do not."


def one_core_env() -> dict[str, str]:
    """The current environment with every thread pool (BLAS, OpenMP, numba) set to one."""
    env = dict(os.environ)
    env.update({name: "1" for name in THREAD_VARS})
    return env


@contextlib.contextmanager
def one_core() -> Iterator[None]:
    """Limit the BLAS/OpenMP pools of this process to one thread (needs threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is normally installed
        print("warning: threadpoolctl missing; set OPENBLAS_NUM_THREADS=1 etc. yourself")
        yield
        return
    with threadpool_limits(limits=1):
        yield


@dataclass(frozen=True)
class Timing:
    """Wall-clock times (s) of repeated runs of the same thing."""

    times: tuple[float, ...]

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    def as_dict(self) -> dict[str, Any]:
        return {"median_s": self.median, "min_s": self.min, "times_s": list(self.times)}


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    """Run ``fn`` once after a garbage collection; (wall seconds, result)."""
    gc.collect()
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def repeat(fn: Callable[[], object], n: int) -> Timing:
    return Timing(tuple(timed(fn)[0] for _ in range(n)))


def seconds(t: float, digits: int = 3) -> str:
    return f"{t:.{digits}f} s"


def millis(t: float, digits: int = 1) -> str:
    return f"{t * 1e3:.{digits}f} ms"


def mark(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str) -> str:
    """An aligned text table; ``align`` has one 'l' or 'r' per column."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [
            c.ljust(w) if a == "l" else c.rjust(w)
            for c, w, a in zip(row, widths, align, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(r) for r in cells[1:]])


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                return text.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def blas_info() -> list[str]:
    """BLAS libraries loaded in this process (threadpoolctl), with their thread counts."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover
        return ["threadpoolctl missing"]
    out = []
    for lib in threadpool_info():
        if lib.get("user_api") != "blas":
            continue
        owner = Path(lib.get("filepath", "")).parent.name.removesuffix(".libs")
        out.append(
            f"{lib.get('internal_api')} {lib.get('version')} {lib.get('architecture', '')} "
            f"({owner}, {lib.get('num_threads')} thr)"
        )
    return out or ["no BLAS found"]


def environment() -> dict[str, Any]:
    """What the figures depend on: CPU, versions, BLAS, thread settings, load."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {
        "cpu": cpu_model(),
        "logical_cpus": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "loadavg_1min": round(load[0], 2),
    }


def environment_line(env: dict[str, Any]) -> str:
    coretype = env["OPENBLAS_CORETYPE"]
    return (
        f"env: {env['cpu']} ({env['logical_cpus']} logical CPUs), Python {env['python']}, "
        f"numpy {env['numpy']}, BLAS {'; '.join(env['blas'])}, "
        f"OPENBLAS_CORETYPE {'=' + coretype if coretype else 'not set'}, "
        f"load avg {env['loadavg_1min']}"
    )
