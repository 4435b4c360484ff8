"""The training regimes' block (full/regimes/dvc.yaml) end to end on the tiny profile: each regime
victim is poisoned and trained on the regime's images with its recipe, defended, probed by every
sequela attack (membership scores kept for the report's bootstrap) and reported; the default
run's stages are untouched by a regime param."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

import tinyrepo
from backdoorlab.io import load_tensors

TINY = tinyrepo.TINY
BLOCK = "full/regimes/dvc.yaml"


@pytest.fixture(scope="module")
def repo(tiny_repo_base, tmp_path_factory) -> Path:
    return tinyrepo.with_block(tiny_repo_base, tmp_path_factory.mktemp("regimes") / "repo", BLOCK)


def test_every_regime_victim_runs_to_the_report(repo):
    grid, regime = TINY["grid"], TINY["regimes"]["membership"]
    victims = [f"{r}-{a}" for r in grid["regimes"] for a in grid["regime_attacks"]]
    summary = json.loads((repo / "reports/regimes/summary.json").read_text())
    assert set(summary) == set(victims) and all(set(cells) == set(grid["regime_defenses"]) for cells in summary.values())
    seed = grid["seeds"][0]  # a regime's victims run at the first seed
    for victim in victims:
        poison = json.loads((repo / f"reports/records/regimes/train/{victim}/s{seed}/poison.json").read_text())
        assert poison["train_size"] == regime["train_size"]  # the regime's images, not the training split
        timing = json.loads((repo / f"reports/records/regimes/train/{victim}/s{seed}/timing.json").read_text())
        assert timing["epochs"] == regime["train"]["epochs"]
        scores = load_tensors(repo / f"reports/records/regimes/cells/{victim}-ft/s{seed}/membership_scores.safetensors")
        assert {"rmia/members", "mia_shadow/non_members", "mia.loss/members"} <= set(scores)
    shadow = json.loads((repo / "reports/records/regimes/membership/shadow.json").read_text())
    assert len(shadow["models"]) == TINY["sequela"]["shadow"]["models"]
    table = (repo / "reports/regimes/tables/membership.md").read_text()
    assert "rmia.auc" in table and "±" in table and "gap" in table and "mia_shadow" not in table  # RMIA first
    other = (repo / "reports/regimes/tables/membership_other.md").read_text()
    assert "mia_shadow.auc" in other and "mia.loss.auc" in other and "rmia" not in other
    assert tinyrepo.dvc("status", "--with-deps", BLOCK, cwd=repo).stdout.strip().endswith("up to date.")
    assert tinyrepo.undeclared_imports(repo) == {}  # each regime stage declares every library file it ran


def test_a_regime_param_reruns_only_the_regime(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["regimes"]["membership"]["train"]["epochs"] += 1
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        assert "up to date" in tinyrepo.dvc("status", "--with-deps", "dvc.yaml", cwd=repo).stdout  # the default run
        changed = json.loads(tinyrepo.dvc("status", "--with-deps", BLOCK, "--json", cwd=repo).stdout or "{}")
        assert any("train@membership-badnets" in name for name in changed), changed
    finally:
        tinyrepo.run(["git", "checkout", "params.yaml"], repo)


def test_a_regime_larger_than_the_training_split_is_refused_by_name(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["regimes"]["membership"]["train_size"] = 100_000
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    try:
        result = tinyrepo.run(["python", "stages/poison.py", "membership-badnets", "--seed", "0"], repo, check=False)
        assert result.returncode == 2, result.stderr
        assert "regimes.membership.train_size: 100000 images and the defender's" in result.stderr
    finally:
        tinyrepo.run(["git", "checkout", "params.yaml"], repo)
