"""Where every stage reads and writes, and the loaders that turn those files back into objects.

One place for the file layout, so the DVC stages (dvc.yaml) and the library agree on paths:

    data/prepared/splits.safetensors   train / test / shadow splits, defender's sample order
    data/prepared/meta.json            shape, classes, normalisation statistics
    data/poisoned/<attack>/            poisoned training set, triggered test set, trigger
    models/<attack>/<defense>.safetensors  (``backdoored`` for the undefended model)
    models/clean.safetensors           a model trained without poison (re-injection baseline)
    models/shadow/                     the membership attacker's shadow models and their splits
    reports/...                        small JSON/TSV/Markdown/PNG outputs, committed to git
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from backdoorlab.config import Params
from backdoorlab.data.base import ImageSet
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.io import load_tensors, read_json
from backdoorlab.models.base import ModelSpec

PREPARED = Path("data/prepared")
SPLITS_FILE = PREPARED / "splits.safetensors"
META_FILE = PREPARED / "meta.json"
REPORTS = Path("reports")
CLEAN_MODEL = Path("models/clean.safetensors")
SHADOW_DIR = Path("models/shadow")
SHADOW_SPLITS = SHADOW_DIR / "membership.safetensors"


def poisoned_dir(attack: str) -> Path:
    return Path("data/poisoned") / attack


def model_file(attack: str, name: str) -> Path:
    """``name`` is ``backdoored`` or a defense instance name."""
    return Path("models") / attack / f"{name}.safetensors"


def shadow_model_file(index: int) -> Path:
    return SHADOW_DIR / f"shadow_{index}.safetensors"


def baseline_dir(attack: str) -> Path:
    """The clean model's re-injection numbers for one attack's trigger."""
    return REPORTS / "baseline" / attack


def train_report_dir(attack: str) -> Path:
    return REPORTS / "train" / attack


def cell_dir(attack: str, defense: str) -> Path:
    return REPORTS / "cells" / f"{attack}-{defense}"


@dataclass(frozen=True)
class Splits:
    train: ImageSet
    test: ImageSet
    shadow: ImageSet  # the membership-inference attacker's own data
    defense_order: torch.Tensor  # positions in ``train``; a defender holding k samples has the first k

    def defense_subset(self, fraction: float) -> ImageSet:
        count = max(1, math.ceil(fraction * len(self.train)))
        return self.train.subset(self.defense_order[:count])


def load_splits() -> Splits:
    tensors = load_tensors(SPLITS_FILE)
    try:
        return Splits(ImageSet.from_tensors(tensors, "train"), ImageSet.from_tensors(tensors, "test"),
                      ImageSet.from_tensors(tensors, "shadow"), tensors["defense_order"])
    except (KeyError, ValueError) as error:
        raise DataError(f"{SPLITS_FILE}: missing or malformed tensor ({error})") from None


def model_spec(params: Params) -> ModelSpec:
    meta = read_json(META_FILE)
    channels, size, _ = meta["image_shape"]
    return ModelSpec(arch=params.model_arch, params=params.model_params, in_channels=channels,
                     image_size=size, num_classes=meta["num_classes"],
                     mean=tuple(meta["mean"]), std=tuple(meta["std"]))


@dataclass(frozen=True)
class PoisonedData:
    train: ImageSet
    poison_indices: torch.Tensor
    triggered_test: ImageSet


def load_poisoned(attack: str) -> PoisonedData:
    folder = poisoned_dir(attack)
    train = load_tensors(folder / "train.safetensors")
    test = load_tensors(folder / "triggered_test.safetensors")
    return PoisonedData(ImageSet.from_tensors(train, "train"), train["poison_indices"],
                        ImageSet.from_tensors(test, "test"))


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; a user error becomes one line on stderr and exit code 2."""
    try:
        main()
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
