"""Plug-ins: discovery (entry points, dotted paths, configuration), the host's
acknowledgement and retry rules, and the built-ins fed by the embedded broker."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import types
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from channels_data import simulated_results, tables

import trapline.api
from trapline.alerts import Alert
from trapline.channels import ALERTS, DEADLETTER, RESULTS, MemoryBroker, publish_result
from trapline.errors import ConfigError
from trapline.plugins import (
    BUILTIN,
    PluginHost,
    discover,
    load_plugin,
    load_plugin_spec,
    load_plugins,
)
from trapline.plugins.alerter import Alerter
from trapline.plugins.compactor import Compactor
from trapline.plugins.dbwriter import DBWriter
from trapline.plugins.parquet import ParquetArchiver
from trapline.simulate import SimulationConfig, write_series
from trapline.storage import Store

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def guide_example() -> types.ModuleType:
    """The example plug-in of docs/plugins.md, as the module ``print_alerts``."""
    text = GUIDE.read_text()
    match = re.search(r"<!-- example: print_alerts.py -->\s*```python\n(.*?)```", text, re.S)
    assert match, "the guide's example is missing"
    code = match.group(1)
    assert len(code.strip().splitlines()) <= 22  # the guide promises a short example
    module = types.ModuleType("print_alerts")
    exec(compile(code, str(GUIDE), "exec"), module.__dict__)
    sys.modules["print_alerts"] = module
    return module


def test_discovery_finds_the_builtins():
    found = discover()
    assert set(BUILTIN) <= set(found)
    assert isinstance(load_plugin("dbwriter", url="sqlite://"), DBWriter)
    assert isinstance(load_plugin("alerter", points=5), Alerter)
    assert isinstance(load_plugin("compactor", every=3), Compactor)
    with pytest.raises(LookupError, match="no plug-in named"):
        load_plugin("nope")


def test_discovery_through_entry_points(tmp_path, monkeypatch):
    package = tmp_path / "my_alert_plugin.py"
    package.write_text("class Mine:\n    name = 'mine'\n    channels = ('alerts',)\n"
                       "    def __init__(self, x=1):\n        self.x = x\n"
                       "    def handle(self, record):\n        pass\n"
                       "    def close(self):\n        pass\n")
    dist = tmp_path / "my_alert_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-alert-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[trapline.plugins]\nmine = my_alert_plugin:Mine\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert discover()["mine"] == "my_alert_plugin:Mine"
    plugin = load_plugin("mine", x=7)
    assert plugin.name == "mine" and plugin.x == 7


def guide_command() -> list[str]:
    """The guide's command that runs the example plug-in, as arguments."""
    match = re.search(r"<!-- example command -->\s*```bash\n(.*?)\n```", GUIDE.read_text(), re.S)
    assert match, "the guide's example command is missing"
    return shlex.split(match.group(1))


def test_the_guide_example_runs_as_documented(tmp_path):
    """The guide's plug-in file and command, in a folder holding them and images/, run by
    the installed command (which does not put the working folder on the path)."""
    example = re.search(r"<!-- example: print_alerts.py -->\s*```python\n(.*?)```",
                        GUIDE.read_text(), re.S).group(1)
    (tmp_path / "print_alerts.py").write_text(example)
    write_series(SimulationConfig(seed=6, epochs=6, bands=1, size=256, n_steady=10,
                                  n_variable=2, n_transient=2, n_fading=0,
                                  transient_start_epoch=3), tmp_path / "images")
    command = guide_command()
    assert command[0] == "trapline" and "run.sqlite" in command
    # -P: no working folder on sys.path, as with the 'trapline' script
    done = subprocess.run([sys.executable, "-P", "-m", "trapline.cli", *command[1:]],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    printed = [line for line in done.stdout.splitlines() if line.startswith("NEW source ")]
    with trapline.api.open(str(tmp_path / "run.sqlite")) as run:
        candidates = run.candidates()
    assert len(candidates) > 0
    assert sorted(int(line.split()[2]) for line in printed) == sorted(candidates.source_id)


def test_plugin_paths_on_the_command_line(tmp_path, monkeypatch):
    """module:Class, module.Class, FILE.py and FILE.py:Class, options after the class."""
    example = re.search(r"<!-- example: print_alerts.py -->\s*```python\n(.*?)```",
                        GUIDE.read_text(), re.S).group(1)
    (tmp_path / "print_alerts.py").write_text(example)
    (tmp_path / "two.py").write_text(example + "\n\nclass Other(PrintAlerts):\n    pass\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "print_alerts", raising=False)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    for spec in ("print_alerts:PrintAlerts:prefix=!!", "print_alerts.PrintAlerts:prefix=!!",
                 "print_alerts.py:prefix=!!", "./print_alerts.py:PrintAlerts:prefix=!!",
                 f"{tmp_path}/print_alerts.py:PrintAlerts:prefix=!!"):
        plugin = load_plugin_spec(spec)
        assert type(plugin).__name__ == "PrintAlerts" and plugin.prefix == "!!", spec
    assert load_plugin_spec("print_alerts.py").prefix == "ALERT"
    assert load_plugin_spec("print_alerts:PrintAlerts:prefix=7").prefix == 7  # a number
    with pytest.raises(ValueError, match="2 plug-in classes .*PrintAlerts, Other"):
        load_plugin_spec("two.py")
    assert type(load_plugin_spec("two.py:Other")).__name__ == "Other"
    with pytest.raises(ImportError, match="no plug-in file"):
        load_plugin_spec("missing.py")
    with pytest.raises(ModuleNotFoundError):
        load_plugin_spec("not_here:Thing")


def test_configuration_by_name_and_dotted_path(tmp_path):
    guide_example()
    plugins = load_plugins([{"name": "parquet", "directory": str(tmp_path)},
                            {"path": "print_alerts:PrintAlerts", "prefix": "!!"},
                            {"path": "print_alerts.PrintAlerts"}])
    assert [p.name for p in plugins] == ["parquet", "print-alerts", "print-alerts"]
    assert plugins[1].prefix == "!!"
    with pytest.raises(ConfigError, match="entry without 'name' or 'path'"):
        load_plugins([{"prefix": "x"}])
    with pytest.raises(ConfigError, match=r"\[\[plugins\]\] parquet: .*unexpected keyword"):
        load_plugins([{"name": "parquet", "nonsense": 1}])


class Flaky:
    """Fails the first ``failures`` times it sees each record."""

    channels = ("t",)

    def __init__(self, name: str, failures: int):
        self.name, self.failures = name, failures
        self.seen: dict[int, int] = {}
        self.done: list[int] = []

    def handle(self, record: int) -> None:
        self.seen[record] = self.seen.get(record, 0) + 1
        if self.seen[record] <= self.failures:
            raise RuntimeError("not now")
        self.done.append(record)

    def close(self) -> None:
        pass


def test_host_acks_only_after_handle_and_dead_letters_poison():
    broker = MemoryBroker()
    retry, poison, fine = Flaky("retry", 2), Flaky("poison", 99), Flaky("fine", 0)
    host = PluginHost(broker, [retry, poison, fine], max_deliveries=4)
    for i in range(3):
        broker.publish("t", i)
    host.drain()
    assert fine.done == [0, 1, 2] and retry.done == [0, 1, 2]
    assert all(n == 3 for n in retry.seen.values())
    assert poison.done == [] and all(n == 4 for n in poison.seen.values())
    for name in ("retry", "poison", "fine"):
        assert broker.pending("t", name).count == 0
    dead = broker.read(DEADLETTER, "ops", "me")
    assert [(d.record.group, d.record.record) for d in dead] == [("poison", i) for i in range(3)]


def _expected(tmp_path) -> dict[str, pd.DataFrame]:
    url = f"sqlite:///{tmp_path / 'expected.sqlite'}"
    with Store(url) as store:
        store.upgrade()
        for result, state in simulated_results():
            store.write(result, state=state)
    return tables(url)


def test_embedded_broker_feeds_every_builtin_and_the_guide_example(tmp_path, capsys):
    import json

    url = f"sqlite:///{tmp_path / 'run.sqlite'}"
    printer = guide_example().PrintAlerts()
    broker = MemoryBroker()
    broker.ensure_group(ALERTS, "check")
    plugins = [DBWriter(), Alerter(points=6), Compactor(every=4),
               ParquetArchiver(tmp_path / "parquet"), printer]
    with PluginHost(broker, plugins, db_url=url) as host:
        for result, state in simulated_results():
            publish_result(broker, result, headers={"state": json.dumps(state)})
            host.drain()
        assert host.failures == 0
    for name, frame in _expected(tmp_path).items():
        pd.testing.assert_frame_equal(tables(url)[name], frame, obj=name)

    n_candidates = sum(len(r.candidates) for r, _ in simulated_results())
    assert n_candidates > 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("ALERT")]
    assert len(printed) == n_candidates == plugins[1].published
    alerts = [m.record for m in broker.read(ALERTS, "check", "me", count=1000)]
    assert len(alerts) == n_candidates and all(isinstance(a, Alert) for a in alerts)
    assert len({a.alert_id for a in alerts}) == n_candidates
    assert all(1 <= len(a.lightcurve) <= 6 for a in alerts)
    assert plugins[2].seen == len(simulated_results())

    archived = pq.read_table(tmp_path / "parquet").to_pandas()
    n_meas = sum(len(r.measurements) + len(r.precovery) for r, _ in simulated_results())
    assert len(archived) == n_meas
    assert set(archived.kind) <= {"blind", "forced", "monitor", "precovery"}
    assert archived.day.nunique() >= 1


def test_db_writer_skips_a_replayed_result(tmp_path):
    url = f"sqlite:///{tmp_path / 'run.sqlite'}"
    writer = DBWriter(url)
    host = PluginHost(MemoryBroker(), [writer])
    result, state = simulated_results()[0]
    assert writer.write(result, state) is not None
    assert writer.write(result, state) is None
    assert (writer.written, writer.skipped) == (1, 1)
    host.close()


def test_alert_lightcurves_come_from_the_database_when_not_seen(tmp_path):
    """An alerter started after the fact (e.g. restarted) reads the stored history."""
    url = f"sqlite:///{tmp_path / 'run.sqlite'}"
    with Store(url) as store:
        store.upgrade()
        for result, state in simulated_results():
            store.write(result, state=state)
    last = next(r for r, _ in reversed(simulated_results())
                if len(r.candidates) and (r.candidates.kind == "variable").all())
    broker = MemoryBroker()
    broker.ensure_group(ALERTS, "check")
    host = PluginHost(broker, [Alerter(url=url, points=50)])
    broker.publish(RESULTS, last)
    host.drain()
    host.close()
    alerts = [m.record for m in broker.read(ALERTS, "check", "me", count=100)]
    assert len(alerts) == len(last.candidates)
    for alert in alerts:
        times = alert.lightcurve.time_mjd
        assert len(times) > 1 and (times <= last.image.time_mjd).all()
        assert (pd.Series(times).diff().dropna() >= 0).all()
        assert times[-1] == last.image.time_mjd
        now = (times == last.image.time_mjd) & (alert.lightcurve.band == last.image.band)
        assert now.sum() == 1  # this image's point once, not again from the database
