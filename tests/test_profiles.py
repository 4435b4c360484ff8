"""Params as compositions of conf/ (DVC's Hydra integration): the committed params.yaml is the
default composition, every profile and every data set x model composes into valid params, and
the paper-scale profile runs its stages at a tiny size (CIFAR-10 binary reader on small local
files, PreAct-ResNet-18 at width 4)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from backdoorlab.compose import composed
from backdoorlab.config import parse_params
from backdoorlab.io import load_tensors
from backdoorlab.layout import SPLITS_FILE
from backdoorlab.pipeline.checks import BLOCKS, check_params, data_shape

ROOT = Path(__file__).resolve().parents[1]
PROFILES = sorted(p.stem for p in (ROOT / "conf" / "profile").glob("*.yaml"))
DATASETS = sorted(p.stem for p in (ROOT / "conf" / "data").glob("*.yaml"))
MODELS = sorted(p.stem for p in (ROOT / "conf" / "model").glob("*.yaml"))


def test_params_yaml_is_the_default_composition():
    assert composed(root=ROOT) == yaml.safe_load((ROOT / "params.yaml").read_text()), \
        "params.yaml is stale: run `make params` after editing conf/"
    script = subprocess.run([sys.executable, str(ROOT / "scripts" / "compose_params.py"), "--check"],
                            capture_output=True, text=True)
    assert script.returncode == 0, script.stderr


@pytest.mark.parametrize("profile", PROFILES)
def test_profile_is_valid(profile):
    raw = composed([f"profile={profile}"], ROOT)
    params = parse_params(raw)
    check_params(params, BLOCKS)
    assert params.grid.attacks and "none" in params.grid.main


def test_the_paper_profile_picks_its_data_and_model_and_the_command_line_wins():
    paper = composed(["profile=paper"], ROOT)
    assert (paper["data"]["dataset"], paper["model"]["arch"], paper["train"]["epochs"]) == ("cifar10", "preact_resnet18", 100)
    mine = composed(["profile=paper", "model=vgg16_bn", "train.epochs=3"], ROOT)
    assert (mine["model"]["arch"], mine["train"]["epochs"], mine["data"]["dataset"]) == ("vgg16_bn", 3, "cifar10")


def test_a_knob_left_to_its_method_default_needs_hydras_add_or_override():
    """README: `-S ++defenses.sft.peak_lr_1=2.0`; without `++` Hydra refuses the unknown key."""
    assert composed(["++defenses.sft.peak_lr_1=2.0"], ROOT)["defenses"]["sft"]["peak_lr_1"] == 2.0
    with pytest.raises(Exception, match="Could not override 'defenses.sft.peak_lr_1'"):
        composed(["defenses.sft.peak_lr_1=2.0"], ROOT)


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("model", MODELS)
def test_every_data_set_and_model_compose_into_valid_params(dataset, model):
    """`dvc exp run -S data=<name> -S model=<arch>` gives params that validate (folder data sets:
    with their class count declared, since no images are here)."""
    overrides = [f"data={dataset}", f"model={model}"]
    if dataset == "image_folder":
        overrides.append("data.options.num_classes=10")
    raw = composed(overrides, ROOT)
    params = parse_params(raw)
    check_params(params, BLOCKS)
    shape, classes = data_shape(params)
    assert (params.data.dataset, params.model_arch) == (dataset, model)
    assert classes >= 10 and len(shape) == 3


def fake_cifar10(root: Path, per_file: int) -> None:
    folder = root / "cifar-10-batches-bin"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
        labels = rng.integers(0, 10, (per_file, 1))
        records = np.concatenate([labels, rng.integers(0, 256, (per_file, 3072))], axis=1)
        records.astype(np.uint8).tofile(folder / name)


def test_paper_profile_stages_run_at_tiny_size(tmp_path):
    params = composed(["profile=paper"], ROOT)
    params["device"] = "cpu"
    params["data"].update(options={"root": str(tmp_path / "cifar"), "download": False},
                          test_size=None, shadow_size=30)  # official split: all of test_batch.bin
    params["model"]["width"] = 4
    params["train"].update(epochs=1, precision="fp32")
    params["defenses"]["sft"].update(epochs_1=1, epochs_2=1)
    fake_cifar10(tmp_path / "cifar", per_file=30)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in (["prepare.py"], ["poison.py", "badnets"], ["train.py", "badnets"],  # the first of grid.seeds: 0
                  ["defend.py", "badnets", "sft"], ["defend.py", "badnets", "nad"]):  # NAD: the model's own layers
        result = subprocess.run([sys.executable, str(ROOT / "stages" / stage[0]), *stage[1:]],
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-2000:]
    data = json.loads((tmp_path / "reports/records/data.json").read_text())
    assert data["split"] == "official" and data["sizes"] == {"train": 120, "test": 30, "shadow": 30}
    test_batch = np.fromfile(tmp_path / "cifar/cifar-10-batches-bin/test_batch.bin", dtype=np.uint8).reshape(30, -1)
    splits = load_tensors(tmp_path / SPLITS_FILE)
    assert torch.equal(splits["test_labels"], torch.from_numpy(test_batch[:, 0].astype(np.int64)))  # the official test part
    cell = json.loads((tmp_path / "reports/records/cells/badnets-sft/s0/defense.json").read_text())
    # 5% of 120 train images = 6, of which 20% (rounded up) held out for validation
    assert (cell["fit_samples"], cell["validation_samples"]) == (4, 2) and 0 <= cell["asr"] <= 1
    assert (tmp_path / "models/badnets/s0/sft.safetensors").stat().st_size > 100_000  # a ResNet-18


def test_paper_profile_paradigms_run_at_tiny_size(tmp_path):
    """The transfer (b) and encoder paradigms with PreAct-ResNet-18: its last block, its encoder."""
    params = composed(["profile=paper"], ROOT)
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
    cell = json.loads((tmp_path / "reports/records/paradigms/cells/transfer_model-badnets-ft/s0/defense.json").read_text())
    assert 0 <= cell["ca"] <= 1  # a five-class downstream task, defended
    assert (tmp_path / "models/encoder/clean.safetensors").stat().st_size > 100_000


def test_a_jpeg_folder_runs_through_the_stages_with_a_new_model(tmp_path):
    """`-S data=image_folder -S data.options.root=...` with ResNet-18: decoded, split, poisoned,
    trained and defended by the stages themselves."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in range(10):
        for i in range(30):
            folder = tmp_path / "tree" / f"class_{label}"
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).save(folder / f"{i}.jpg")
    params = composed(["profile=tiny", "data=image_folder", "model=resnet18", f"data.options.root={tmp_path / 'tree'}",
                       f"data.options.cache_dir={tmp_path / 'cache'}", "data.test_size=60", "data.shadow_size=60"], ROOT)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    for stage in (["prepare.py"], ["poison.py", "badnets"], ["train.py", "badnets"], ["defend.py", "badnets", "ft"]):
        result = subprocess.run([sys.executable, str(ROOT / "stages" / stage[0]), *stage[1:]],
                                cwd=tmp_path, capture_output=True, text=True)
        assert result.returncode == 0, (stage, result.stderr[-2000:])
    data = json.loads((tmp_path / "reports/records/data.json").read_text())
    assert data["dataset"] == "image_folder" and data["image_shape"] == [3, 32, 32]
    assert data["sizes"] == {"train": 180, "test": 60, "shadow": 60} and len(list((tmp_path / "cache").iterdir())) == 1
    cell = json.loads((tmp_path / "reports/records/cells/badnets-ft/s0/defense.json").read_text())
    assert 0 <= cell["ca"] <= 1
