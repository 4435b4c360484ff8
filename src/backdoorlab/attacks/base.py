"""What every poisoning attack shares: all-to-one labels, the poison-rate draw, triggered tests.

An attack only has to say how to stamp its trigger on a batch of uint8 images
(:meth:`Attack.apply_trigger`) and what its trigger looks like for humans (:meth:`Attack.preview`);
choosing which samples to poison, relabelling them, and building the triggered test set (only from
images whose true label is not the target, so ASR is not inflated) are the same for all.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import torch

from backdoorlab.data.base import ImageSet
from backdoorlab.registry import Registry
from backdoorlab.settings import parse_section, require


@dataclass(frozen=True)
class PoisonResult:
    train: ImageSet  # the full training set, poisoned samples stamped and relabelled
    poison_indices: torch.Tensor  # int64 positions in ``train`` that were poisoned


class Attack:
    """Base class; subclasses define ``Config`` (a dataclass with ``target`` and ``poison_rate``)."""

    Config: ClassVar[type]

    def __init__(self, config: Any, image_shape: tuple[int, int, int], num_classes: int) -> None:
        self.config = config
        self.image_shape = image_shape
        self.num_classes = num_classes

    @property
    def target(self) -> int:
        return self.config.target

    def check(self, key: str) -> None:
        """Attack-specific range checks (the trigger must fit the image, ...); ``key`` names the section."""

    def apply_trigger(self, images: torch.Tensor) -> torch.Tensor:
        """Return a stamped copy of uint8 images (N, C, H, W)."""
        raise NotImplementedError

    def trigger_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors that describe the trigger, saved beside the poisoned data for the record."""
        return {}

    def poison(self, train: ImageSet, generator: torch.Generator) -> PoisonResult:
        """Stamp and relabel ``round(poison_rate * N)`` samples drawn from the non-target classes."""
        candidates = torch.nonzero(train.labels != self.target).flatten()
        count = round(self.config.poison_rate * len(train))
        require(count <= len(candidates), "poison_rate",
                f"asks for {count} poisoned samples but only {len(candidates)} are not of the target class")
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values
        images, labels = train.images.clone(), train.labels.clone()
        images[chosen] = self.apply_trigger(images[chosen])
        labels[chosen] = self.target
        return PoisonResult(ImageSet(images, labels), chosen)

    def triggered_test(self, test: ImageSet) -> ImageSet:
        """Triggered copies of the test images whose true label is not the target (true labels kept)."""
        keep = test.labels != self.target
        return ImageSet(self.apply_trigger(test.images[keep]), test.labels[keep])


def check_all_to_one(config: Any, key: str, num_classes: int) -> None:
    """Range checks every all-to-one attack shares: a valid target and 0 < poison_rate < 1."""
    require(0 <= config.target < num_classes, f"{key}.target",
            f"must be a class index in [0, {num_classes - 1}], got {config.target}")
    require(0 < config.poison_rate < 1, f"{key}.poison_rate",
            f"must be in (0, 1), got {config.poison_rate}")


ATTACKS: Registry[Attack] = Registry("attack")


def build_attack(name: str, section: Mapping[str, Any], image_shape: tuple[int, int, int],
                 num_classes: int) -> Attack:
    """Build the attack instance ``attacks.<name>`` of params.yaml (its ``method`` picks the class)."""
    key = f"attacks.{name}"
    require(isinstance(section, Mapping) and "method" in section, f"{key}.method", "missing required parameter")
    cls = ATTACKS.get(section["method"], f"{key}.method")
    config = parse_section(cls.Config, section, key, ignore=("method",))
    check_all_to_one(config, key, num_classes)
    attack = cls(config, image_shape, num_classes)
    attack.check(key)
    return attack
