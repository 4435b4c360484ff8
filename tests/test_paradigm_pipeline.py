"""The paradigms' block (full/paradigms/dvc.yaml) end to end on the tiny profile: every victim's
pre-training, implant, downstream, defense, sequela and report stages run; a defense param
re-runs no pre-training, implant or downstream stage; the downstream head's param re-runs the
victims and counterpart but neither the encoder's pre-training nor BadEncoder."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

import tinyrepo

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]
TINY = tinyrepo.TINY
BLOCK = "full/paradigms/dvc.yaml"


def stale(repo: Path) -> set[str]:
    """Stages of the block, its victims' files included, that `dvc status` says must re-run (their
    own names, file prefix dropped)."""
    output = tinyrepo.dvc("status", "--with-deps", BLOCK, "--json", cwd=repo).stdout
    return {name.split(":", 1)[-1] for name in json.loads(output or "{}")}


# The block's victims against no defense and FT only: every paradigm's own stages still run, and
# the other defenses' cells are the same stages with other params (28 stages instead of 40).
MAIN = ["none", "ft"]


@pytest.fixture(scope="module")
def repo(tiny_repo_base, tmp_path_factory) -> Path:
    return tinyrepo.with_block(tiny_repo_base, tmp_path_factory.mktemp("paradigms") / "repo", BLOCK,
                               [f"grid.main=[{','.join(MAIN)}]"])


def test_every_victim_runs_to_the_report(repo):
    grid = {**TINY["grid"], "main": MAIN}
    victims = [f"{p}-{a}" for p in grid["paradigms"] for a in grid["paradigm_attacks"]]
    summary = json.loads((repo / "reports/paradigms/summary.json").read_text())
    assert set(summary) == set(victims)
    assert all(set(cells) == set(grid["main"]) for cells in summary.values())
    table = (repo / "reports/paradigms/tables/paradigms.md").read_text()
    assert all(victim in table for victim in victims)
    # the transfer victims' task has the downstream classes only: 5 outputs, test labels 0..4
    task = json.loads((repo / "reports/records/paradigms/counterpart/transfer_data.json").read_text())
    assert task["classes"] == 5
    assert stale(repo) == set()
    assert tinyrepo.undeclared_imports(repo) == {}  # each paradigm stage declares every library file it ran


def test_a_defense_param_reruns_no_pre_training(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["defenses"]["ft"]["lr"] = 0.02
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    changed = stale(repo)
    assert changed and all(re.match(r"(defend|sequela)@.*-ft-s\d+$|report$", name) for name in changed), changed
    tinyrepo.run(["git", "checkout", "params.yaml"], repo)


def test_the_downstream_head_reruns_neither_simclr_nor_badencoder(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["paradigms"]["encoder"]["downstream"]["epochs"] = 3
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    changed = stale(repo)
    seed = TINY["grid"]["seeds"][0]
    assert {"counterpart@encoder", f"downstream@encoder-badnets-s{seed}"} <= changed, changed
    assert not any(name.startswith(("upstream@", "implant@")) for name in changed), changed
    assert not any("transfer" in name for name in changed), changed
    tinyrepo.run(["git", "checkout", "params.yaml"], repo)
