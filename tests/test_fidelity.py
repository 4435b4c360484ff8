"""The fidelity map: a defense's CA cost and ASR as the defender's clean data grows, labelled
against the papers' operating point, run end to end through its DVC block at tiny size."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest
from PIL import Image

from backdoorlab.compose import composed
from backdoorlab.config import parse_params
from backdoorlab.fidelity import FidelitySettings, fidelity_cells, fidelity_settings
from backdoorlab.reporting.fidelity import claim
from backdoorlab.reporting.panels import MAX_ASPECT
from backdoorlab.reporting.verdicts import interval
from tinyrepo import ROOT, dvc, run

SETTINGS = FidelitySettings(attacks=["badnets"], defenses=["d3"], defender_fractions=[0.05])  # 3 points, 5%


@pytest.mark.parametrize("costs, asrs, collapsed, expected", [
    ([0.010, 0.012, 0.011], [0.01, 0.02, 0.015], False, "holds"),    # both upper ends inside
    ([0.010, 0.012, 0.011], [0.01, 0.02, 0.015], True, "fails"),     # a collapsed model never holds
    ([0.15, 0.17, 0.16], [0.0, 0.0, 0.001], False, "fails"),         # removed, but at 16 CA points
    ([0.01, 0.011, 0.012], [0.60, 0.70, 0.65], False, "fails"),      # cheap, but the backdoor stays
    ([0.00, 0.06, 0.02], [0.01, 0.02, 0.015], False, "unclear"),     # the cost's interval straddles 3
])
def test_claim_reads_the_intervals_against_the_operating_point(costs, asrs, collapsed, expected):
    assert claim(interval(costs, 0.95), interval(asrs, 0.95), collapsed, SETTINGS) == expected


def test_the_default_share_reuses_the_default_runs_cells():
    params = parse_params(composed([], ROOT))
    cells = fidelity_cells(params, fidelity_settings(params))
    reused = {(c.defense, c.fraction) for c in cells if c.in_default_run}
    assert reused == {(d, params.data.defense_fraction) for d in fidelity_settings(params).defenses
                      if d in params.grid.defenses}
    assert len(cells) == len({(c.attack, c.defense, c.fraction) for c in cells})


def test_a_defender_without_a_training_image_is_one_line(tiny_repo):
    """A share so small that the defender's images are all validation: one line naming the key."""
    result = run([sys.executable, "stages/defend.py", "badnets", "ft", "--clean-fraction", "0.0001"], tiny_repo,
                 check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: data.validation_fraction:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = run([sys.executable, "stages/defend.py", "badnets", "ft", "--clean-fraction", "1.5"], tiny_repo,
                 check=False)
    assert result.returncode == 2 and result.stderr.startswith("error: --clean-fraction:"), result.stderr


def test_the_fidelity_block_runs_end_to_end(tiny_repo):
    """`dvc repro full/fidelity/dvc.yaml` on the reproduced tiny repository runs only the map's own
    cells (the default share's are the default run's), reports every point over every seed with its
    interval and claim, and leaves the default run up to date."""
    params = parse_params(composed(["profile=tiny"], ROOT))
    settings = fidelity_settings(params)
    dvc("repro", "full/fidelity/dvc.yaml", cwd=tiny_repo)
    rows = list(csv.DictReader((tiny_repo / "reports/fidelity/tables/fidelity.csv").open()))
    assert len(rows) == len(settings.attacks) * len(settings.defenses) * len(settings.defender_fractions)
    train = json.loads((tiny_repo / "reports/records/data.json").read_text())["sizes"]["train"]
    for row in rows:
        fraction = float(row["fraction"])
        assert int(row["images"]) == -(-fraction * train // 1)  # ceil(fraction * train)
        assert int(row["n_seeds"]) == len(params.grid.seeds) and row["claim"] in {"holds", "fails", "unclear"}
        assert float(row["ca_cost_half"]) >= 0 and 0 <= float(row["asr"]) <= 1
        assert (row["in_default_run"] == "True") == (fraction == params.data.defense_fraction)
    for seed in params.grid.seeds:  # the map's own models, beside the default cells'
        assert (tiny_repo / f"models/badnets/s{seed}/d3_30pct.safetensors").is_file()
    width, height = Image.open(tiny_repo / "reports/fidelity/figures/fidelity.png").size
    assert width <= MAX_ASPECT * height
    summary = json.loads((tiny_repo / "reports/fidelity/summary.json").read_text())
    assert set(summary["badnets"]) == set(settings.defenses)
    status = dvc("status", "--with-deps", "dvc.yaml", cwd=tiny_repo).stdout  # the default run was not touched
    assert "changed" not in status and "modified" not in status, status
    again = dvc("repro", "full/fidelity/dvc.yaml", cwd=tiny_repo).stdout
    assert "Running stage" not in again, again
