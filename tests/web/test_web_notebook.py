"""The example notebook runs headless from top to bottom (nbclient)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "examples" / "explore.ipynb"


@pytest.mark.slow
def test_example_notebook_runs(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed")
    nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed")
    pytest.importorskip("ipykernel", reason="ipykernel is not installed")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    scratch = tmp_path / "tmp"  # the kernel's temporary folder
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    plots = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
             if o.get("output_type") == "display_data" and "image/png" in o.get("data", {})]
    if importlib.util.find_spec("matplotlib"):
        assert len(plots) == 2  # the lightcurve and the eta-V plane, inline
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert "run.thresholds()" in code and "v_int > 0.05" not in code
    assert list(scratch.iterdir()) == []  # cleaned up after itself
    last = nb.cells[-1].outputs[-1]
    assert last["output_type"] == "execute_result"
