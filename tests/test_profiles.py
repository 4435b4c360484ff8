"""Params profiles: each validates, and the paper-scale one runs its stages at a tiny size
(CIFAR-10 binary reader on small local files, PreAct-ResNet-18 at width 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from backdoorlab.config import parse_params

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted((ROOT / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("profile", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_is_valid(profile):
    raw = yaml.safe_load(profile.read_text())
    params = parse_params(raw)
    assert params.grid.attacks and "none" in params.grid.main
    # full/*/dvc.yaml's matrices read these keys: DVC cannot even list the stages without them
    assert {"more_attacks", "more_defenses", "paradigms", "paradigm_attacks", "cleansers",
            "cleansing_attacks"} <= set(raw["grid"])


def fake_cifar10(root: Path, per_file: int) -> None:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, (per_file, 1))
        records = np.concatenate([labels, rng.integers(0, 256, (per_file, 3072))], axis=1)
        records.astype(np.uint8).tofile(folder / name)


def test_paper_profile_stages_run_at_tiny_size(tmp_path):
    params = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())
    params["device"] = "cpu"
    params["data"].update(options={"root": str(tmp_path / "cifar"), "download": False},
                          test_size=40, shadow_size=20)
    params["model"]["width"] = 4
    params["train"].update(epochs=1, precision="fp32")
    params["defenses"]["sft"].update(epochs_1=1, epochs_2=1)
    fake_cifar10(tmp_path / "cifar", per_file=30)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in (["prepare.py"], ["poison.py", "badnets"], ["train.py", "badnets"],
                  ["defend.py", "badnets", "sft"]):
        result = subprocess.run([sys.executable, str(ROOT / "stages" / stage[0]), *stage[1:]],
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    cell = json.loads((tmp_path / "reports/records/cells/badnets-sft/defense.json").read_text())
    # 5% of 120 train images = 6, of which 20% (rounded up) held out for validation
    assert (cell["fit_samples"], cell["validation_samples"]) == (4, 2) and 0 <= cell["asr"] <= 1
    assert (tmp_path / "models/badnets/sft.safetensors").stat().st_size > 100_000  # a ResNet-18


def test_paper_profile_paradigms_run_at_tiny_size(tmp_path):
    """The transfer (b) and encoder paradigms with PreAct-ResNet-18: its last block, its encoder."""
    params = yaml.safe_load((ROOT / "profiles" / "paper.yaml").read_text())
    params["device"] = "cpu"
    params["data"].update(options={"root": str(tmp_path / "cifar"), "download": False}, test_size=40, shadow_size=100)
    params["model"]["width"] = 4
    params["train"].update(epochs=1, precision="fp32", batch_size=16)
    paradigms = params["paradigms"]
    paradigms["transfer_model"].update(pretrain={"epochs": 1}, implant={"epochs": 1},
                                       downstream={"fine_tune": "last_block", "epochs": 1, "lr": 0.01})
    paradigms["encoder"].update(pretrain={"images": 32, "epochs": 1, "batch_size": 16},
                                implant={"epochs": 1, "batch_size": 16, "references": 1},
                                downstream={"epochs": 1, "lr": 0.001})
    fake_cifar10(tmp_path / "cifar", per_file=60)  # the shadow split must hold a reference of class 0
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in (["prepare.py"], ["upstream.py", "transfer_model"], ["implant.py", "transfer_model", "badnets"],
                  ["downstream.py", "transfer_model", "badnets"], ["defend.py", "transfer_model-badnets", "ft"],
                  ["upstream.py", "encoder"], ["implant.py", "encoder", "blended"], ["downstream.py", "encoder"]):
        result = subprocess.run([sys.executable, str(ROOT / "stages" / stage[0]), *stage[1:]],
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, (stage, result.stderr[-2000:])
    cell = json.loads((tmp_path / "reports/records/paradigms/cells/transfer_model-badnets-ft/defense.json").read_text())
    assert 0 <= cell["ca"] <= 1  # a five-class downstream task, defended
    assert (tmp_path / "models/encoder/clean.safetensors").stat().st_size > 100_000
