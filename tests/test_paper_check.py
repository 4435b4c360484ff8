"""`make paper-check` (bench/paper_check.py) at tiny size on the CPU: the command a GPU session
runs, with fake CIFAR-10 binary files, a width-4 model and one epoch of everything."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_profiles import fake_cifar10

ROOT = Path(__file__).resolve().parents[1]
TINY = ["device=cpu", "model.width=4", "train.precision=fp32", "data.test_size=null", "data.shadow_size=30",
        "defenses.ft.epochs=1", "defenses.sft.epochs_1=1", "defenses.sft.epochs_2=1", "defenses.d3.epochs=1"]


def test_the_paper_check_runs_every_cell_and_compares_with_the_papers(tmp_path):
    fake_cifar10(tmp_path / "cifar", per_file=30)
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "bench/paper_check.py", "--root", str(tmp_path / "cifar"), "--epochs", "1",
                             "--work", str(tmp_path / "work"), "--out", str(out), "--set", *TINY],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [(c["attack"], c["defense"]) for c in results["cells"]] == [
        (a, d) for a in ("badnets", "blended") for d in ("none", "ft", "sft", "d3")]
    assert all(0 <= c["ca"] <= 100 and 0 <= c["asr"] <= 100 for c in results["cells"])
    assert results["epochs"] == 1 and results["train_images_per_second"] > 0 and results["bare_images_per_second"] > 0
    table = (out / "results.md").read_text()
    assert "| badnets | d3 |" in table and "90.8" in table  # the D3 paper's BadNets CA beside ours


def test_the_paper_check_names_missing_data(tmp_path):
    result = subprocess.run([sys.executable, "bench/paper_check.py", "--root", str(tmp_path / "nowhere"),
                             "--work", str(tmp_path / "work"), "--out", str(tmp_path / "out")],
                            cwd=ROOT, capture_output=True, text=True)
    assert result.returncode != 0 and "nowhere/cifar-10-batches-bin/test_batch.bin: missing" in result.stderr
    assert not (tmp_path / "out").exists()
