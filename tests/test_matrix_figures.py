"""The attack x defense heatmaps and trade-off panels (reporting/matrix_figures.py): what each
cell shows, and that a full-matrix-sized figure still reads at a glance (the aspect rule)."""

from __future__ import annotations

import pytest
from PIL import Image

from backdoorlab.reporting.matrix_figures import heatmaps, matrix, tradeoff, verdict_mark
from backdoorlab.reporting.panels import MAX_ASPECT


def record(ca: float, asr: float, verdict: str) -> dict:
    return {"ca": ca, "asr": asr, "ca_half": 0.01, "asr_half": 0.02, "verdict": verdict}


RECORDS = {"badnets-none": record(0.90, 0.99, "not removed"), "badnets-ft": record(0.88, 0.95, "not removed"),
           "badnets-d3": record(0.70, 0.01, "removed"), "blended-none": record(0.80, 1.00, "not removed"),
           "blended-ft": record(0.79, 0.40, "inconclusive, 1 seed"), "blended-d3": record(0.10, 0.10, "collapsed")}


def test_each_cell_shows_its_asr_its_ca_cost_against_none_and_its_verdict():
    columns, asr, cost, marks = matrix(["badnets", "blended"], ["none", "ft", "d3"], RECORDS)
    assert columns == ["ft", "d3"]
    assert asr.flatten().tolist() == pytest.approx([95, 1, 40, 10])
    assert cost.flatten().tolist() == pytest.approx([2, 20, 1, 70])  # against the same attack's `none`
    assert marks == [["N", "R"], ["?*", "C"]]  # a 1-seed verdict is starred


def test_an_unknown_verdict_is_refused_rather_than_drawn():
    with pytest.raises(KeyError):
        verdict_mark({"verdict": "maybe"})


@pytest.mark.parametrize("attacks, defenses", [(2, 5), (7, 18)])
def test_the_figures_obey_the_aspect_rule_at_every_matrix_size(tmp_path, attacks, defenses):
    names = [f"a{i}" for i in range(attacks)]
    columns = ["none", *(f"d{j}" for j in range(defenses - 1))]
    records = {f"{a}-{d}": record(0.9 - 0.01 * j, 0.5, "removed") for a in names for j, d in enumerate(columns)}
    for draw, name in ((heatmaps, "matrix.png"), (tradeoff, "tradeoff.png")):
        draw(tmp_path / name, names, columns, records)
        width, height = Image.open(tmp_path / name).size
        assert width / height <= MAX_ASPECT, (name, width, height)
