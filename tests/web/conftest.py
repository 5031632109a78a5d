"""Fixtures of the web tests: a run made by the real pipeline on a small simulated
series (with part of it compacted into lightcurve bins), an ASGI test client and a
live server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi", reason="the web extra (fastapi) is not installed")

TOKEN = "test-token-123"


@pytest.fixture(scope="session")
def web_run(tmp_path_factory):
    """SQLite URL of a stored run: 6 epochs x 2 bands, 256 px, with candidates; raw
    points older than 2 minutes compacted into 120 s bins."""
    from trapline.pipeline.config import PipelineConfig
    from trapline.run import run_files
    from trapline.simulate import SimulationConfig, write_series
    from trapline.storage import Store
    from trapline.storage.compaction import Tier, compact

    folder = tmp_path_factory.mktemp("webrun")
    sim = SimulationConfig(seed=11, epochs=6, bands=2, size=256, cadence_s=60.0,
                           n_steady=15, n_variable=4, n_transient=2, n_fading=1,
                           variable_snr=(30, 200))
    series = write_series(sim, folder / "series")
    url = f"sqlite:///{folder / 'run.sqlite'}"
    config = PipelineConfig()
    config.run.workers = 1
    run_files([str(series.out_dir)], url, config)
    with Store(url) as store:
        compact(store.engine, [Tier(0, 150), Tier(120, 0)], candidate_window_s=0)
    return url


@pytest.fixture
def app(web_run):
    from trapline.web import create_app

    return create_app(web_run, TOKEN, use_env_token=False)


@pytest.fixture
def client(app):
    from fastapi.testclient import TestClient

    with TestClient(app) as client:
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(url: str):
    """Serve the app on ``url``'s database with uvicorn on 127.0.0.1 (background
    thread); yields the base URL."""
    uvicorn = pytest.importorskip("uvicorn")
    from trapline.web import create_app

    app = create_app(url, TOKEN, use_env_token=False)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.time() + 20
    while not server.started:
        if time.time() > deadline or not thread.is_alive():
            pytest.fail("the web server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="session")
def server():
    """:func:`serve`, for tests that serve a database of their own."""
    return serve


@pytest.fixture(scope="session")
def live_server(web_run):
    """Base URL of the app served by uvicorn on 127.0.0.1 (background thread)."""
    with serve(web_run) as base:
        yield base
