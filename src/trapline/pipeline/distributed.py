"""Scale-out on Dask distributed: the measuring stage (read, quality control,
extraction) runs on the cluster's workers; association stays ordered in the process
that drives the run, so results are those of the embedded run.

Dask is an optional dependency (``pip install trapline[distributed]``).
"""

from __future__ import annotations

from trapline.errors import TraplineError, install_hint


def connect(address: str, timeout_s: float = 5.0):
    """A client on a running scheduler and its number of worker threads."""
    try:
        from distributed import Client
    except ImportError as exc:
        raise TraplineError(install_hint("--scheduler (Dask)", "distributed", exc)) from exc
    try:
        client = Client(address, timeout=timeout_s)
    except (OSError, TimeoutError) as exc:
        raise TraplineError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    threads = sum(client.nthreads().values()) or 1
    return client, threads
