"""The prepared data, a victim's task, poisoned set and attack, and the recipes models train with.

A victim is an attack's name, ``<paradigm>-<attack>`` or ``<regime>-<attack>``
(:mod:`backdoorlab.layout`), replicated once per seed. A paradigm's victim has its paradigm's
task (the downstream classes); its paradigm is reached through the registry, so a stage that
serves only standalone victims never imports the paradigms.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from backdoorlab.attacks.base import Attack, TriggeredSet, build_attack
from backdoorlab.config import Params
from backdoorlab.data.base import ImageSet, class_subset
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.io import load_tensors, read_json
from backdoorlab.layout import (META_FILE, SPLITS_FILE, attack_of, paradigm_of, poisoned_dir, regime_of,
                                trigger_file)
from backdoorlab.models.base import ModelSpec
from backdoorlab.registry import PARADIGMS
from backdoorlab.settings import parse_section, require
from backdoorlab.training.loop import OptimConfig


@dataclass(frozen=True)
class DefenderData:
    fit: ImageSet  # what a defense trains on
    validation: ImageSet  # held out: the defender's own measure of clean accuracy


@dataclass(frozen=True)
class Splits:
    train: ImageSet
    test: ImageSet
    shadow: ImageSet  # the membership-inference attacker's own data
    defense_order: torch.Tensor  # positions in ``train``; a defender holding k samples has the first k

    def defender_positions(self, fraction: float) -> torch.Tensor:
        """Positions in ``train`` of the samples a defender holding ``fraction`` of it has."""
        return self.defense_order[:max(1, math.ceil(fraction * len(self.train)))]

    def defense_subset(self, fraction: float) -> ImageSet:
        """All the clean data a defender holding ``fraction`` of the training set has."""
        return self.train.subset(self.defender_positions(fraction))

    def validation_positions(self, fraction: float, validation_fraction: float) -> torch.Tensor:
        """Positions in ``train`` of the defender's held-out validation images: the first
        ``ceil(validation_fraction * k)`` of its k samples in the seeded defender order (so a larger
        defender's validation set contains a smaller one's)."""
        positions = self.defender_positions(fraction)
        held_out = math.ceil(validation_fraction * len(positions))
        if held_out < 1 or held_out >= len(positions):
            raise ConfigError(f"data.validation_fraction: {validation_fraction} of the defender's "
                              f"{len(positions)} images leaves an empty training or validation part")
        return positions[:held_out]

    def defender(self, fraction: float, validation_fraction: float) -> DefenderData:
        """The defender's data split into a part to train on and a held-out validation part (the
        two never overlap)."""
        positions = self.defender_positions(fraction)
        held_out = len(self.validation_positions(fraction, validation_fraction))
        return DefenderData(fit=self.train.subset(positions[held_out:]),
                            validation=self.train.subset(positions[:held_out]))

    def restricted(self, classes: list[int]) -> Splits:
        """The task of ``classes`` only, relabelled in list order; the defender order keeps the
        same relative order (so a defender of the task holds the task's share of the same draw)."""
        kept = torch.isin(self.train.labels, torch.tensor(classes))
        position = torch.full((len(self.train),), -1, dtype=torch.long)
        position[kept] = torch.arange(int(kept.sum()))
        order = position[self.defense_order]
        return Splits(class_subset(self.train, classes), class_subset(self.test, classes),
                      class_subset(self.shadow, classes), order[order >= 0])


def load_splits() -> Splits:
    tensors = load_tensors(SPLITS_FILE)
    try:
        return Splits(ImageSet.from_tensors(tensors, "train"), ImageSet.from_tensors(tensors, "test"),
                      ImageSet.from_tensors(tensors, "shadow"), tensors["defense_order"])
    except (KeyError, ValueError) as error:
        raise DataError(f"{SPLITS_FILE}: missing or malformed tensor ({error})") from None


def model_spec(params: Params) -> ModelSpec:
    """The blueprint of ``model`` for the prepared data set (its shape, classes and statistics)."""
    meta = read_json(META_FILE)
    channels, size, _ = meta["image_shape"]
    return ModelSpec(arch=params.model_arch, params=params.model_params, in_channels=channels,
                     image_size=size, num_classes=meta["num_classes"],
                     mean=tuple(meta["mean"]), std=tuple(meta["std"]))


@dataclass(frozen=True)
class Task:
    """What a victim's model is for: the splits of its classes and its blueprint."""

    splits: Splits
    spec: ModelSpec


def paradigm(params: Params, name: str) -> Any:
    """The paradigm instance ``paradigms.<name>`` (a :class:`backdoorlab.paradigms.base.Paradigm`),
    built through the registry: only the stages of a paradigm's victims import the paradigms."""
    section = params.instance("paradigms", name)
    return PARADIGMS.get(section["method"], f"paradigms.{name}.method").from_section(name, section)


def task_classes(params: Params, paradigm_name: str, num_classes: int) -> list[int]:
    """The data set's classes of a paradigm's downstream task; the paradigm resolves its task against
    the data set (one line naming ``paradigms.<name>.task`` if it does not fit)."""
    return paradigm(params, paradigm_name).downstream_classes(num_classes)


def paradigm_task(params: Params, name: str) -> Task:
    """The downstream task of ``paradigms.<name>`` (the data set's own when it keeps every class)."""
    splits, spec = load_splits(), model_spec(params)
    classes = task_classes(params, name, spec.num_classes)
    if classes == list(range(spec.num_classes)):
        return Task(splits, spec)
    return Task(splits.restricted(classes), replace(spec, num_classes=len(classes)))


def load_task(params: Params, victim: str) -> Task:
    """A victim's task: the data set's, or its paradigm's downstream task."""
    name = paradigm_of(params, victim)
    return Task(load_splits(), model_spec(params)) if name is None else paradigm_task(params, name)


def victim_attack(params: Params, victim: str) -> Attack:
    """``attacks.<attack>`` of a victim, built for its task (a paradigm's victim: the task's classes),
    with the trigger state its params give (:func:`load_attack` restores a trained one)."""
    attack, name = attack_of(params, victim), paradigm_of(params, victim)
    meta = read_json(META_FILE)
    shape, classes = tuple(meta["image_shape"]), meta["num_classes"]
    if name is not None:
        classes = len(task_classes(params, name, classes))
    built = build_attack(attack, params.instance("attacks", attack), shape, classes)  # type: ignore[arg-type]
    if name is not None:
        paradigm(params, name).validate_attack(built, f"grid.paradigm_attacks ({attack} in paradigm {name})")
    return built


def load_attack(params: Params, victim: str, seed: int, state: str | None = None) -> Attack:
    """The victim's attack with its trigger state restored: the final state the ``train`` or
    ``downstream`` stage wrote, or (``state="prepared"``) the one ``poison`` prepared."""
    attack = victim_attack(params, victim)
    path = poisoned_dir(victim, seed) / "trigger.safetensors" if state == "prepared" else trigger_file(victim, seed)
    try:
        attack.load_state(load_tensors(path))
    except KeyError as error:
        raise DataError(f"{path}: not a trigger state of attacks.{attack_of(params, victim)} (missing {error}); "
                        "re-run its poison and train stages") from None
    return attack


def triggered_test(params: Params, victim: str, seed: int, test: ImageSet) -> TriggeredSet:
    """The attack's triggered test set, from its final trigger state (cheap: a batch of stamps)."""
    return load_attack(params, victim, seed).triggered_test(test)


@dataclass(frozen=True)
class PoisonedData:
    train: ImageSet
    poison_indices: torch.Tensor


def load_poisoned(victim: str, seed: int) -> PoisonedData:
    train = load_tensors(poisoned_dir(victim, seed) / "train.safetensors")
    return PoisonedData(ImageSet.from_tensors(train, "train"), train["poison_indices"])


@dataclass(frozen=True)
class RegimeSettings:
    """A training regime: victims ``<regime>-<attack>`` trained on ``train_size`` images of the
    training split with ``train`` (the ``train`` section with the regime's overrides applied), as
    are the regime's clean model and shadow models. The defender and the test set are unchanged."""

    train_size: int
    train: OptimConfig


def merged(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied, nested mappings merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base[key], value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def regime_settings(params: Params, regime: str) -> RegimeSettings:
    """``regimes.<regime>``, parsed (the regimes' block reads it; the default run never does)."""
    key = f"regimes.{regime}"
    section = params.section("regimes").get(regime)
    require(isinstance(section, dict), key, "expected a mapping")
    unknown = sorted(set(section) - {"train_size", "train"})
    require(not unknown, f"{key}.{unknown[0] if unknown else ''}", "unknown parameter (known: train_size, train)")
    size = section.get("train_size")
    require(isinstance(size, int) and not isinstance(size, bool) and size > 0, f"{key}.train_size",
            f"must be a positive integer, got {size!r}")
    overrides = section.get("train") or {}
    require(isinstance(overrides, dict), f"{key}.train", "expected a mapping (overrides of train)")
    return RegimeSettings(size, parse_section(OptimConfig, merged(dict(params.section("train")), overrides), f"{key}.train"))


def regime_recipe(params: Params, regime: str | None) -> OptimConfig:
    """The recipe a regime's models (victims, clean model, shadow models) train with; ``train`` for none."""
    if regime is None:
        return parse_section(OptimConfig, params.section("train"), "train")
    return regime_settings(params, regime).train


def training_recipe(params: Params, victim: str) -> OptimConfig:
    """The recipe a victim trains with: its regime's, or ``train``."""
    return regime_recipe(params, regime_of(params, victim))


def victim_training_set(params: Params, victim: str, splits: Splits) -> ImageSet:
    """The clean images a victim is poisoned and trained on (:func:`regime_training_set` of its regime)."""
    return regime_training_set(params, regime_of(params, victim), splits)


def regime_training_set(params: Params, regime: str | None, splits: Splits) -> ImageSet:
    """The whole training split without a regime; a regime's ``train_size`` training images: the last
    of the seeded defender order, so they never overlap the defender's clean data (the first of that
    order), which stays the default run's."""
    if regime is None:
        return splits.train
    size = regime_settings(params, regime).train_size
    defender = max(len(splits.defender_positions(params.clean_fraction(d))) for d in params.grid.regime_defenses)
    if size + defender > len(splits.train):
        raise ConfigError(f"regimes.{regime}.train_size: {size} images and the defender's {defender} do not fit "
                          f"in the {len(splits.train)}-image training split")
    return splits.train.subset(splits.defense_order[len(splits.defense_order) - size:])
