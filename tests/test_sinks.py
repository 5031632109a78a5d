"""The alert sinks (console, files, webhook, email), end to end: the pipeline runs on a
small simulated series with transients and each sink's output is compared with the
candidates the run stored. Webhooks go to an HTTP server and e-mails to an SMTP server
run by the test on the loopback interface."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest
from astropy.coordinates import Angle
from helpers import wait_until_accepting

import trapline.api
from trapline.alerts import Alert, iso_time
from trapline.channels import ALERTS, MemoryBroker
from trapline.cli import main
from trapline.plugins import PluginHost, load_plugin, load_plugin_spec
from trapline.plugins.alerter import Alerter
from trapline.plugins.console import ConsoleSink
from trapline.plugins.files import FilesSink
from trapline.plugins.webhook import WebhookSink
from trapline.simulate import SimulationConfig, write_series

SIM = SimulationConfig(seed=6, epochs=6, bands=1, size=256, n_steady=10, n_variable=2,
                       n_transient=2, n_fading=0, transient_start_epoch=3)


@pytest.fixture(scope="module")
def series(tmp_path_factory) -> Path:
    return write_series(SIM, tmp_path_factory.mktemp("sinks") / "series").out_dir


def run(series: Path, db: Path, *plugins: str) -> int:
    args = ["run", str(series), "--db", str(db), "--workers", "1", "--no-progress"]
    for spec in plugins:
        args += ["--plugin", spec]
    return main(args)


def stored_candidates(db: Path) -> pd.DataFrame:
    with trapline.api.open(str(db)) as r:
        candidates = r.candidates()
    assert len(candidates) >= 3  # the series has new sources and variables
    return candidates


def keys_of_candidates(c: pd.DataFrame) -> list[tuple]:
    """(source id, kind, level, image time in ms) of each candidate, sorted."""
    return sorted((int(s), k, lv, round(t * 86400e3)) for s, k, lv, t in
                  zip(c.source_id, c.kind, c.level, c.time_mjd, strict=True))


def keys_of_alerts(alerts: list[Alert]) -> list[tuple]:
    return sorted((a.source_id, a.kind, a.level, round(a.time_mjd * 86400e3)) for a in alerts)


LINE = re.compile(
    r"^(?P<time>\S+)\s+(?P<kind>NEW|VARIABLE)\s+(?P<level>\S+)\s+source (?P<sid>\d+)\s+"
    r"RA (?P<ra>[\d.]+) Dec (?P<dec>[+-][\d.]+) \((?P<hms>\S+) (?P<dms>\S+)\)\s+"
    r"band (?P<band>\d+) (?P<mhz>[\d.]+) MHz\s+flux (?P<flux>\S+) Jy\s+"
    r"significance (?P<sig>\S+)(\s+(?P<url>\S+))?$")


def test_console_prints_a_line_per_stored_candidate_with_its_page(series, tmp_path, capsys):
    db = tmp_path / "run.sqlite"
    assert run(series, db, "console:base_url=http://127.0.0.1:8000/") == 0
    lines = [m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m]
    c = stored_candidates(db)
    assert sorted((int(m["sid"]), m["kind"].lower(), m["level"], m["time"]) for m in lines) == \
        sorted((int(s), k, lv, iso_time(t)) for s, k, lv, t in
               zip(c.source_id, c.kind, c.level, c.time_mjd, strict=True))
    by_key = {(int(s), k): (f, g) for s, k, f, g in
              zip(c.source_id, c.kind, c.flux, c.significance, strict=True)}
    for m in lines:
        flux, significance = by_key[int(m["sid"]), m["kind"].lower()]
        assert float(m["flux"]) == pytest.approx(flux, rel=1e-3)
        assert float(m["sig"]) == pytest.approx(significance, abs=0.05)
        assert float(m["mhz"]) == pytest.approx(150.0)
        # the sexagesimal position is the decimal one (read back by astropy)
        assert Angle(m["hms"], "hourangle").deg == pytest.approx(float(m["ra"]), abs=1e-4)
        assert Angle(m["dms"], "deg").deg == pytest.approx(float(m["dec"]), abs=5e-5)
        assert m["url"] == f"http://127.0.0.1:8000/sources/{m['sid']}"

    # the link is the source's page of 'trapline serve' on this run
    from fastapi.testclient import TestClient

    from trapline.web import create_app

    with TestClient(create_app(str(db), use_env_token=False)) as client:
        for m in lines:
            page = client.get(m["url"].removeprefix("http://127.0.0.1:8000"))
            assert page.status_code == 200 and f"Source {m['sid']}" in page.text


def test_listen_adds_the_console_unless_given():
    from trapline.commands import console_first
    from trapline.pipeline.config import PipelineConfig

    assert console_first([], PipelineConfig()) == ["console"]
    assert console_first(["files"], PipelineConfig()) == ["console", "files"]
    assert console_first(["console:base_url=http://x"], PipelineConfig()) == [
        "console:base_url=http://x"]
    configured = PipelineConfig(plugins=[{"name": "console", "base_url": "http://x"}])
    assert console_first(["files"], configured) == ["files"]


def test_listen_command_prints_alerts_unless_no_console(tmp_path, capsys):
    """``trapline listen`` with no plug-in given prints a line per stored candidate."""
    import argparse

    from test_stream_listen import free_port

    from trapline.commands import listen, simulate

    lp = argparse.ArgumentParser()
    listen.configure(lp)
    assert lp.parse_args(["--no-console"]).no_console is True
    db, port = tmp_path / "live.sqlite", free_port()
    args = lp.parse_args(["--port", str(port), "--db", str(db), "--bands", "1",
                          "--max-wait-s", "0.5", "--duration-s", "6",
                          "--metrics-every-s", "0"])
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", listen.run(args)))
    thread.start()
    wait_until_accepting(port, 10)
    sp = argparse.ArgumentParser()
    simulate.configure(sp)
    assert simulate.run(sp.parse_args([
        "--stream", f"127.0.0.1:{port}", "--stream-format", "fits", "--stream-cadence-s",
        "0.05", "--seed", "6", "--epochs", "6", "--bands", "1", "--size", "256",
        "--n-steady", "10", "--n-variable", "2", "--n-transient", "2", "--n-fading", "0",
        "--transient-start", "3"])) == 0
    thread.join(30)
    assert result["rc"] == 0
    lines = [m for m in map(LINE.match, capsys.readouterr().out.splitlines()) if m]
    c = stored_candidates(db)
    assert sorted((int(m["sid"]), m["kind"].lower()) for m in lines) == sorted(
        zip(c.source_id.astype(int), c.kind, strict=True))


def test_files_are_json_lines_and_voevents_in_day_folders(series, tmp_path):
    from test_alerts import SCHEMA, etree

    db, out = tmp_path / "run.sqlite", tmp_path / "alerts"
    assert run(series, db, f"files:directory={out},authority=example.org") == 0
    c = stored_candidates(db)
    days = sorted({iso_time(t)[:10] for t in c.time_mjd})
    assert sorted(p.name for p in out.iterdir()) == days
    alerts = [Alert.from_json(line) for day in days
              for line in (out / day / f"alerts-{day}.jsonl").read_text().splitlines()]
    assert keys_of_alerts(alerts) == keys_of_candidates(c)
    for alert in alerts:
        assert iso_time(alert.time_mjd)[:10] in days
        packet = out / iso_time(alert.time_mjd)[:10] / f"{alert.alert_id}.xml"
        tree = etree.parse(str(packet))
        assert SCHEMA.validate(tree), SCHEMA.error_log
        assert tree.getroot().get("ivorn") == f"ivo://example.org/trapline#{alert.alert_id}"
    assert len(list(out.rglob("*.xml"))) == len(alerts)


def test_files_rotate_by_utc_day_and_skip_replays(series, tmp_path):
    db = tmp_path / "run.sqlite"
    assert run(series, db) == 0
    from test_alerts import all_alerts

    alert = all_alerts()[0]
    late = dataclasses.replace(alert, alert_id="late", time_mjd=float(int(alert.time_mjd))
                               + 1 - 1e-7)  # 23:59:59.99 UTC
    next_day = dataclasses.replace(alert, alert_id="next", time_mjd=float(int(alert.time_mjd))
                                   + 1 + 1e-7)
    sink = FilesSink(directory=str(tmp_path / "out"), voevent=False)
    for a in (alert, late, alert, next_day):
        sink.handle(a)
    sink.close()
    again = FilesSink(directory=str(tmp_path / "out"), voevent="false")
    again.handle(late)  # a replay after a restart
    again.close()
    day0, day1 = iso_time(alert.time_mjd)[:10], iso_time(next_day.time_mjd)[:10]
    assert day0 != day1 and iso_time(late.time_mjd)[:10] == day0
    ids = {d: [json.loads(x)["alert_id"] for x in
               (tmp_path / "out" / d / f"alerts-{d}.jsonl").read_text().splitlines()]
           for d in (day0, day1)}
    assert ids == {day0: [alert.alert_id, "late"], day1: ["next"]}
    assert not list((tmp_path / "out").rglob("*.xml"))


# --- webhook --------------------------------------------------------------------------


class Hook(ThreadingHTTPServer):
    """An incoming-webhook server answering ``statuses`` in turn, then ``default``."""

    def __init__(self, statuses: list[int], default: int):
        super().__init__(("127.0.0.1", 0), HookHandler)
        self.statuses, self.default = list(statuses), default
        self.requests: list[tuple[int, dict]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/abc"

    def delivered(self) -> list[dict]:
        return [body for status, body in self.requests if status == 200]


class HookHandler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        assert self.headers["Content-Type"] == "application/json"
        with self.server.lock:
            status = self.server.statuses.pop(0) if self.server.statuses else self.server.default
            self.server.requests.append((status, body))
        self.send_response(status)
        if status == 429:
            self.send_header("Retry-After", "0")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


@contextmanager
def hook_server(statuses: list[int] = (), default: int = 200):
    server = Hook(list(statuses), default)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def test_webhook_posts_slack_compatible_bodies_of_the_stored_candidates(series, tmp_path):
    db, dead = tmp_path / "run.sqlite", tmp_path / "dead.jsonl"
    with hook_server() as hook:
        assert run(series, db, f"webhook:url={hook.url},base_url=http://127.0.0.1:8000,"
                               f"deadletter={dead}") == 0
    bodies = hook.delivered()
    assert len(bodies) == len(hook.requests)  # each alert once
    assert keys_of_alerts([Alert.from_dict(b["alert"]) for b in bodies]) == \
        keys_of_candidates(stored_candidates(db))
    for body in bodies:
        match = LINE.match(body["text"])
        assert match and int(match["sid"]) == body["alert"]["source_id"]
        assert match["url"] == f"http://127.0.0.1:8000/sources/{match['sid']}"
    assert not dead.exists()


def test_webhook_retries_a_server_that_fails_twice(series, tmp_path):
    db, dead = tmp_path / "run.sqlite", tmp_path / "dead.jsonl"
    with hook_server([503, 502]) as hook:
        assert run(series, db, f"webhook:url={hook.url},backoff_s=0.05,deadletter={dead}") == 0
    statuses = [status for status, _ in hook.requests]
    n = len(stored_candidates(db))
    assert statuses == [503, 502] + [200] * n
    # the first alert was sent three times, then each of the others once
    first = hook.requests[0][1]["alert"]["alert_id"]
    assert [b["alert"]["alert_id"] for _, b in hook.requests[:3]] == [first] * 3
    assert len({b["alert"]["alert_id"] for b in hook.delivered()}) == n
    assert not dead.exists()


def test_webhook_dead_letters_what_an_always_failing_server_refuses(series, tmp_path):
    db, dead = tmp_path / "run.sqlite", tmp_path / "dead.jsonl"
    with hook_server(default=500) as hook:
        assert run(series, db, f"webhook:url={hook.url},retries=2,backoff_s=0.01,"
                               f"deadletter={dead}") == 0
    c = stored_candidates(db)
    with trapline.api.open(str(db)) as r:  # the run carried on: every image is stored
        assert len(r.images()) == SIM.epochs
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert keys_of_alerts([Alert.from_dict(x["alert"]) for x in letters]) == \
        keys_of_candidates(c)
    assert {x["error"] for x in letters} == {"HTTP 500 Internal Server Error"}
    assert {x["sink"] for x in letters} == {"webhook"}
    # all retries for the first alert, then the server is taken to be down: one try each
    assert len(hook.requests) == 3 + (len(c) - 1)


def test_webhook_does_not_retry_4xx_but_does_429(tmp_path):
    from test_alerts import all_alerts

    alerts = all_alerts()[:2]
    dead = tmp_path / "dead.jsonl"
    with hook_server([404, 429]) as hook:
        sink = WebhookSink(url=hook.url, backoff_s=0.01, deadletter=str(dead))
        for a in alerts:
            sink.handle(a)
        sink.close()
    assert [s for s, _ in hook.requests] == [404, 429, 200]
    assert sink.delivered == 1 and sink.dead == 1
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [(x["alert"]["alert_id"], x["error"]) for x in letters] == [
        (alerts[0].alert_id, "HTTP 404 Not Found")]


def test_webhook_dead_letters_when_nothing_listens(tmp_path):
    from test_alerts import all_alerts

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dead = tmp_path / "dead.jsonl"
    sink = WebhookSink(url=f"http://127.0.0.1:{port}/", retries=1, backoff_s=0.01,
                       deadletter=str(dead))
    sink.handle(all_alerts()[0])
    sink.close()
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["error"].startswith("URLError") and "refused" in letter["error"].lower()


# --- email ----------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler keeping the messages; answers 451 (try later) ``busy`` times."""

    def __init__(self, busy: int = 0):
        self.messages: list = []
        self.busy = busy
        self.logins: list[tuple[bytes, bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802
        if self.busy:
            self.busy -= 1
            return "451 4.3.0 busy, try later"
        from email import message_from_bytes, policy

        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                              message_from_bytes(envelope.content, policy=policy.default)))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult

        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"s3cret")


@contextmanager
def smtp_server(inbox: Inbox):
    controller_mod = pytest.importorskip("aiosmtpd.controller")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = controller_mod.Controller(inbox, hostname="127.0.0.1", port=port,
                                           authenticator=inbox.authenticate,
                                           auth_require_tls=False)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def test_email_mails_each_stored_candidate_with_its_voevent(series, tmp_path, monkeypatch):
    from test_alerts import SCHEMA, etree

    monkeypatch.setenv("TEST_SMTP_USER", "observer")
    monkeypatch.setenv("TEST_SMTP_PASSWORD", "s3cret")
    db = tmp_path / "run.sqlite"
    inbox = Inbox(busy=1)
    with smtp_server(inbox) as port:
        assert run(series, db, f"email:host=127.0.0.1,port={port},to=a@example.org,"
                               "b@example.org,sender=pipe@example.org,backoff_s=0.05,"
                               "user_env=TEST_SMTP_USER,password_env=TEST_SMTP_PASSWORD,"
                               f"base_url=http://127.0.0.1:8000,deadletter={tmp_path}/d") == 0
    c = stored_candidates(db)
    assert len(inbox.messages) == len(c)  # the first after one 451 and a retry
    assert set(inbox.logins) == {(b"observer", b"s3cret")}
    alerts = []
    for sender, recipients, msg in inbox.messages:
        assert sender == "pipe@example.org"
        assert recipients == ["a@example.org", "b@example.org"]
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        line, page = text.splitlines()[:2]
        alert = Alert.from_json(text.split("\n\n", 1)[1])
        alerts.append(alert)
        assert LINE.match(line)["sid"] == str(alert.source_id)
        assert page == f"Source page: http://127.0.0.1:8000/sources/{alert.source_id}"
        assert f"source {alert.source_id}" in msg["Subject"]
        assert msg["Message-ID"] == f"<{alert.alert_id}@example.org>"
        (xml,) = [p for p in msg.iter_attachments() if p.get_filename().endswith(".xml")]
        tree = etree.fromstring(xml.get_content())
        assert SCHEMA.validate(tree) and alert.alert_id in tree.get("ivorn")
    assert keys_of_alerts(alerts) == keys_of_candidates(c)
    assert not (tmp_path / "d").exists()


def test_email_options_are_checked(monkeypatch, capsys):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ValueError, match="needs recipients"):
        load_plugin("email")
    with pytest.raises(ValueError, match="set user_env to the name of an environment"):
        load_plugin_spec("email:to=a@example.org,password_env=HOME")
    with pytest.raises(ValueError, match="password_env .* \\(got 'NOT_SET_ANYWHERE'\\)"):
        load_plugin_spec("email:to=a@example.org,user_env=HOME,password_env=NOT_SET_ANYWHERE")
    sink = load_plugin_spec("email:to=a@example.org,b@example.org,ssl=yes")
    assert sink.to == ["a@example.org", "b@example.org"] and sink.ssl and sink.port == 465
    assert main(["run", "nothing", "--plugin", "email:to=x@y,starttls=maybe"]) == 2
    assert capsys.readouterr().err.strip() == (
        "trapline run: error: plug-in 'email:to=x@y,starttls=maybe': option 'starttls' of "
        "plug-in email must be true or false, got 'maybe'")


# --- options and the alerter ----------------------------------------------------------


def test_sink_options_from_the_configuration_file(series, tmp_path, capsys):
    out = tmp_path / "alerts"
    config = tmp_path / "run.toml"
    config.write_text(f'[[plugins]]\nname = "files"\ndirectory = "{out}"\nvoevent = false\n'
                      '[[plugins]]\nname = "console"\nbase_url = "http://h:1"\n')
    db = tmp_path / "run.sqlite"
    assert main(["run", str(series), "--db", str(db), "--workers", "1", "--no-progress",
                 "--config", str(config)]) == 0
    n = len(stored_candidates(db))
    assert sum(1 for _ in out.rglob("*.jsonl")) >= 1 and not list(out.rglob("*.xml"))
    assert sum(len(p.read_text().splitlines()) for p in out.rglob("*.jsonl")) == n
    assert capsys.readouterr().out.count("http://h:1/sources/") == n
    config.write_text('[[plugins]]\nname = "files"\nvoevent = "sometimes"\n')
    assert main(["run", str(series), "--db", str(db), "--config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == (
        "trapline run: error: [[plugins]] files: option 'voevent' of plug-in files must be "
        "true or false, got 'sometimes'")


def test_a_sink_gets_an_alerter_unless_one_runs_with_it():
    console = ConsoleSink()
    host = PluginHost(MemoryBroker(), [console])
    assert [type(p) for p in host.plugins] == [Alerter, ConsoleSink]
    alerter = Alerter(points=3)
    host = PluginHost(MemoryBroker(), [console, alerter])
    assert host.plugins == [console, alerter]
    assert PluginHost(MemoryBroker(), [alerter]).plugins == [alerter]
    assert ALERTS in console.channels


def test_config_defaults_list_every_sink_option(capsys):
    """``trapline config --defaults`` shows each sink's options; uncommented, a block is
    a [[plugins]] table holding the declared defaults."""
    import tomllib

    from trapline.cli import main
    from trapline.pipeline.config import config_from_dict
    from trapline.plugins.base import builtin_options

    assert main(["config", "--defaults"]) == 0
    text = capsys.readouterr().out
    declared = builtin_options()
    assert set(declared) == {"console", "files", "webhook", "email"}
    for name, options in declared.items():
        block = re.search(rf'# \[\[plugins\]\]\n# name = "{name}"\n((?:# \w+ = .*\n)+)', text)
        assert block, name
        lines = [line[2:] for line in block.group(0).splitlines()]
        table = config_from_dict(tomllib.loads("\n".join(lines))).plugins[0]
        assert table == {"name": name, **{k: o.default for k, o in options.items()}}
        for key, option in options.items():
            assert f"# {option.help}" in block.group(1).split(f"# {key} = ")[1].split("\n")[0]
