"""A run publishing on Redis and plug-ins consuming it in another command."""

from __future__ import annotations

import pandas as pd
import pytest
from helpers import REDIS_URL

import trapline.api
from trapline.cli import main
from trapline.plugins.base import guess_types, load_plugin_spec, parse_spec
from trapline.simulate import SimulationConfig, write_series

redis = pytest.importorskip("redis")


def test_parse_plugin_options():
    assert parse_spec("parquet:directory=/tmp/x,points=5,ratio=0.5") == (
        "parquet", {"directory": "/tmp/x", "points": "5", "ratio": "0.5"})
    assert guess_types({"points": "5", "ratio": "0.5", "d": "/x"}) == {
        "points": 5, "ratio": 0.5, "d": "/x"}
    with pytest.raises(ValueError, match="'nonsense' is not KEY=VALUE"):
        load_plugin_spec("alerter:nonsense")
    with pytest.raises(ValueError, match="'x' is not KEY=VALUE"):
        parse_spec("alerter:x,points=3")


def test_run_publishes_and_consume_archives_and_alerts(tmp_path, capsys, redis_prefix):
    broker = f"{REDIS_URL}?prefix={redis_prefix}"
    files = write_series(SimulationConfig(seed=6, epochs=6, bands=1, size=256, n_steady=10,
                                          n_variable=2, n_transient=2, n_fading=0,
                                          transient_start_epoch=3), tmp_path / "series")
    db = f"sqlite:///{tmp_path / 'run.sqlite'}"
    assert main(["run", str(files.out_dir), "--db", db, "--workers", "1", "--no-progress",
                 "--broker", broker]) == 0
    archive = tmp_path / "archive"
    assert main(["consume", "--broker", broker, "--db", db, "--once",
                 "--plugin", f"parquet:directory={archive}",
                 "--plugin", "alerter"]) == 0
    out = capsys.readouterr().out
    assert "messages handled" in out
    stored = trapline.api.open(db).measurements()
    archived = pd.concat(pd.read_parquet(p) for p in archive.rglob("*.parquet"))
    assert len(archived) == len(stored)
    # The alerter published one alert per candidate on the broker.
    client = redis.Redis.from_url(REDIS_URL)
    alerts = [k for k in client.keys(f"{redis_prefix}*") if b"alerts" in k]
    assert alerts and client.xlen(alerts[0]) == len(trapline.api.open(db).candidates())
    assert main(["consume", "--broker", broker, "--plugin", "nonexistent", "--once"]) == 2


def test_listen_feeds_in_process_plugins(tmp_path):
    """``trapline listen --plugin alerter``: alerts come out of the live stream, and the
    time from an image's arrival to its alert is recorded."""
    from helpers import stream_through

    from trapline.commands import load_plugin_specs
    from trapline.run import LiveProcessor

    sim = SimulationConfig(seed=6, epochs=6, bands=1, size=256, n_steady=10, n_variable=2,
                           n_transient=2, n_fading=0, transient_start_epoch=3)
    db = tmp_path / "live.sqlite"
    plugins = load_plugin_specs(["alerter"], str(db))
    processor = LiveProcessor(str(db), plugins=plugins)
    stream_through(processor, sim, "fits")
    candidates = trapline.api.open(str(db)).candidates()
    assert len(candidates) > 0
    assert plugins[0].published == len(candidates)
    assert 0 < len(processor.alert_latencies_s) <= 6
    assert all(0 <= s < 30 for s in processor.alert_latencies_s)


def test_plugins_from_the_configuration(tmp_path):
    """[[plugins]] tables in the TOML configuration run in the pipeline's process."""
    archive = tmp_path / "archive"
    config = tmp_path / "run.toml"
    config.write_text(f'[run]\nworkers = 1\n[[plugins]]\nname = "parquet"\n'
                      f'directory = "{archive}"\n')
    files = write_series(SimulationConfig(seed=6, epochs=3, bands=1, size=128, n_steady=4,
                                          n_variable=0, n_transient=0, n_fading=0),
                         tmp_path / "series")
    db = f"sqlite:///{tmp_path / 'run.sqlite'}"
    assert main(["run", str(files.out_dir), "--db", db, "--config", str(config),
                 "--no-progress"]) == 0
    archived = pd.concat(pd.read_parquet(p) for p in archive.rglob("*.parquet"))
    assert len(archived) == len(trapline.api.open(db).measurements()) > 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[[plugins]]\ndirectory = 'x'\n")
    assert main(["run", str(files.out_dir), "--db", db, "--config", str(bad)]) == 2
