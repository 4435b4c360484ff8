"""The DVC pipeline end to end on the tiny profile, in a temporary copy of the repository:
a cold `dvc repro` builds every cell, a second does nothing, `dvc exp run -S defenses.sft.*`
re-runs only the sft cells and what depends on them, and the same seed gives the same metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = yaml.safe_load((ROOT / "profiles" / "tiny.yaml").read_text())


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result.stdout + result.stderr


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git copy of the repository's source with the tiny profile as params.yaml, reproduced once."""
    dst = tmp_path_factory.mktemp("repo")
    copy_sources(ROOT, dst)
    shutil.copy2(ROOT / "profiles" / "tiny.yaml", dst / "params.yaml")
    run(["git", "init", "-q"], dst)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "add", "-A"], dst)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "tiny"], dst)
    output = run([str(BIN / "dvc"), "repro"], dst)
    (dst / "first_repro.log").write_text(output)
    return dst


def summary(repo: Path) -> dict:
    return json.loads((repo / "reports" / "summary.json").read_text())


def test_cold_repro_builds_every_cell_and_the_report(repo):
    cells = summary(repo)
    attacks = TINY["grid"]["attacks"]
    expected = {f"{a}-{d}" for a in attacks for d in TINY["grid"]["defenses"]}
    assert set(cells) == expected | {f"{a}-clean_model" for a in attacks}  # + re-injection baselines
    cells = {name: cells[name] for name in expected}
    for name, cell in cells.items():
        assert 0 <= cell["ca"] <= 1 and 0 <= cell["asr"] <= 1, name
    for table in ("main.md", "main.csv", "cells.csv"):
        assert (repo / "reports" / "tables" / table).stat().st_size > 0
    assert (repo / "reports" / "figures" / "defenses_ca_asr.png").read_bytes()[:4] == b"\x89PNG"


def test_second_repro_does_nothing(repo):
    output = run([str(BIN / "dvc"), "repro"], repo)
    assert stages_run(output) == set()
    assert "up to date" in output


def test_changing_an_sft_param_reruns_only_the_sft_cells(repo):
    output = run([str(BIN / "dvc"), "exp", "run", "-S", "defenses.sft.peak_lr_1=0.5"], repo)
    ran = stages_run(output)
    assert ran, output
    assert all(stage == "report" or stage.endswith("-sft") or stage.startswith("landscape@") for stage in ran), ran
    attacks = TINY["grid"]["attacks"]
    assert {f"defend@{a}-sft" for a in attacks} | {f"sequela@{a}-sft" for a in attacks} | {"report"} <= ran


def test_same_seed_gives_identical_metrics(repo):
    """Re-running a training and a defense stage by hand reproduces their metrics exactly.
    (Last: it rewrites outputs, with new wall times, that other stages depend on.)"""
    files = [repo / "reports" / "train" / "badnets" / "metrics.json",
             repo / "reports" / "cells" / "badnets-sft" / "defense.json"]
    before = [json.loads(f.read_text()) for f in files]
    run([sys.executable, "stages/train.py", "badnets"], repo)
    run([sys.executable, "stages/defend.py", "badnets", "sft"], repo)
    after = [json.loads(f.read_text()) for f in files]
    for old, new in zip(before, after):
        for key in ("seconds", "images_per_second"):
            old.pop(key, None), new.pop(key, None)
        assert old == new
