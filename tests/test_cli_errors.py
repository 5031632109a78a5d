"""User errors of the ``trapline`` command: one line on stderr and the documented exit code.

The command runs in a subprocess, as a user runs it. A base install (no psycopg, no
redis) is reproduced by a meta-path finder that refuses those modules before
``trapline.cli.main`` runs: everything else is the real code path.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

import trapline
from trapline.simulate import SimulationConfig, write_series
from trapline.storage import Store

SRC = str(Path(trapline.__file__).resolve().parents[1])

RUN_MAIN = """
import sys
blocked = set(sys.argv[1].split(",")) - {""}

class Missing:
    # A module that is not installed: what the import system says for it.
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, Missing())
from trapline.cli import main
sys.exit(main(sys.argv[2:]))
"""


def trapline_cli(*args: str, blocked: tuple[str, ...] = (), cwd: Path | None = None,
                 timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``trapline ARGS`` with ``blocked`` top-level modules missing."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-c", RUN_MAIN, ",".join(blocked), *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def assert_one_line_error(result: subprocess.CompletedProcess, code: int, *phrases: str) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == code, result.stderr
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0]


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    write_series(SimulationConfig(seed=3, epochs=2, bands=1, size=64, n_steady=1, n_variable=0,
                                  n_transient=0, n_fading=0), folder)
    return folder


def test_postgresql_without_psycopg_says_how_to_install_it(images, tmp_path):
    url = "postgresql://postgres@127.0.0.1:5432/postgres"
    for args in (["db", "upgrade", "--db", url],
                 ["run", str(images), "--db", url, "--no-progress"]):
        result = trapline_cli(*args, blocked=("psycopg",), cwd=tmp_path)
        assert_one_line_error(result, 2, "psycopg is missing", "pip install 'trapline[postgres]'")


def test_redis_broker_without_redis_says_how_to_install_it(images, tmp_path):
    url = "redis://127.0.0.1:6379/0"
    for args in (["run", str(images), "--db", str(tmp_path / "run.sqlite"), "--broker", url,
                  "--no-progress"],
                 ["consume", "--broker", url, "--plugin", "alerter", "--once",
                  "--db", str(tmp_path / "run.sqlite")]):
        result = trapline_cli(*args, blocked=("redis",), cwd=tmp_path)
        assert_one_line_error(result, 2, "redis is missing", "pip install 'trapline[redis]'")


def test_unknown_database_scheme_is_one_line(images, tmp_path):
    for args in (["run", str(images), "--db", "foo://x", "--no-progress"],
                 ["export", "images", "--db", "mysql://user@host/db"]):
        result = trapline_cli(*args, cwd=tmp_path)
        assert_one_line_error(result, 2, "unsupported database URL", "sqlite:///FILE")


def test_unknown_broker_scheme_is_one_line(images, tmp_path):
    for url, args in (("foo://x", ["run", str(images), "--db", str(tmp_path / "run.sqlite"),
                                   "--no-progress"]),
                      ("mysql://user@host/db", ["consume", "--plugin", "alerter", "--once"])):
        result = trapline_cli(*args, "--broker", url, cwd=tmp_path)
        assert_one_line_error(result, 2, f"unknown broker URL {url!r}", "redis://")


def test_serve_refuses_a_port_number_out_of_range(tmp_path):
    for port in ("99999", "http"):
        result = trapline_cli("serve", "--port", port, cwd=tmp_path)
        assert_one_line_error(result, 2, "--port", f"{port!r} is not a port number (1-65535)")


def test_serve_on_a_port_in_use_is_one_line(images, tmp_path):
    pytest.importorskip("uvicorn")
    db = tmp_path / "run.sqlite"
    with Store(str(db)) as store:
        store.upgrade()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = trapline_cli("serve", "--db", str(db), "--port", str(port), timeout=30)
    assert_one_line_error(result, 2, f"cannot listen on 127.0.0.1:{port}",
                          "Address already in use", "another --port")


def test_parse_errors_are_one_line(tmp_path):
    assert_one_line_error(trapline_cli("bogus", cwd=tmp_path), 2, "invalid choice: 'bogus'")
    assert_one_line_error(trapline_cli("run", cwd=tmp_path), 2, "trapline run: error:",
                          "'trapline run --help'")


def test_verbose_works_before_and_after_the_sub_command(tmp_path):
    # The root logger's level after main(): WARNING (30) less 10 per -v, down to DEBUG.
    show_level = ("import logging, sys; from trapline.cli import main; "
                  "main(sys.argv[1:]); print(logging.getLogger().level)")
    env = {**os.environ, "PYTHONPATH": SRC}
    for args, level in ((["config", "--defaults"], 30), (["config", "--defaults", "-v"], 20),
                        (["-v", "config", "-v", "--defaults"], 10)):
        result = subprocess.run([sys.executable, "-c", show_level, *args], capture_output=True,
                                text=True, env=env, cwd=tmp_path, timeout=60)
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1] == str(level), args


def test_version():
    result = trapline_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"trapline {trapline.__version__}"
