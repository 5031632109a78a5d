"""``trapline demo``: its table names each flagged source by the pipeline's id and by the
id of the simulated source at that position."""

from __future__ import annotations

import re

import pandas as pd

import trapline
from trapline.cli import main
from trapline.commands.demo import truth_matches
from trapline.geometry import separation_deg


def test_demo_prints_pipeline_and_truth_ids(tmp_path, capsys):
    assert main(["demo", str(tmp_path / "demo"), "--epochs", "6", "--bands", "1"]) == 0
    out = capsys.readouterr().out
    header = re.search(r"^\s+pipeline id\s+truth id\s+kind", out, re.M)
    assert header
    rows = re.findall(r"^\s+(\d+)\s+(-?\d+)\s+(new|variable)\s", out[header.end():], re.M)
    assert rows
    url = f"sqlite:///{tmp_path / 'demo' / 'trapline.sqlite'}"
    with trapline.open(url) as run:
        found = run.sources().set_index("source_id")
        flagged = set(run.candidates().source_id)
    truth = pd.read_csv(tmp_path / "demo" / "images" / "sources.csv").set_index("source_id")
    assert {int(pipeline_id) for pipeline_id, _, _ in rows} == flagged
    for pipeline_id, truth_id, _ in rows:
        source = found.loc[int(pipeline_id)]
        if int(truth_id) >= 0:  # the printed truth source lies where the pipeline found one
            true = truth.loc[int(truth_id)]
            assert separation_deg(source.ra, source.dec, true.ra, true.dec) * 3600 < 20
    # The ids differ in general: printing only one of them would mislead.
    assert any(pipeline_id != truth_id for pipeline_id, truth_id, _ in rows)


def test_truth_matches_finds_the_nearest_simulated_source():
    truth = pd.DataFrame({"source_id": [7, 3], "population": ["steady", "transient"],
                          "ra": [10.0, 10.01], "dec": [0.0, 0.0]})
    found = pd.DataFrame({"source_id": [1, 2, 5], "ra": [10.0101, 10.0, 11.0],
                          "dec": [0.0, 0.0001, 0.0]})
    matches = truth_matches(found, truth)
    assert matches.truth_id.to_dict() == {1: 3, 2: 7, 5: -1}
    assert matches.population.to_dict() == {1: "transient", 2: "steady", 5: "none"}
