"""What every attack shares: label modes, the poison-rate draw, triggered test sets, trigger state.

An attack says how to stamp its trigger on a batch of uint8 images (:meth:`Attack.apply_trigger`).
Choosing which samples to poison, relabelling them and building the triggered test set are the same
for all, in two label modes:

- ``all_to_one``: every triggered input should go to ``target``; poisons are drawn from, and the
  triggered test set keeps only, images whose true label is not the target (so ASR is not inflated);
- ``all_to_all``: a triggered input of class y should go to ``(y + 1) mod C``; every image is a
  candidate, and ASR is measured per sample against its own attack label.

Three optional extensions cover the attacks that are more than a fixed stamp:

- :meth:`Attack.prepare` fits the trigger on the attacker's own data (LF's universal perturbation,
  SSBA's steganographic encoder) inside the cached ``poison`` stage;
- :meth:`Attack.training_hook` returns a :class:`~backdoorlab.training.loop.BatchHook` that the shared
  training loop calls on every batch (WaNet's noise mode, the input-aware generator): attacks that
  control training plug into the one loop rather than bringing their own;
- :meth:`Attack.state_tensors` / :meth:`Attack.load_state` carry whatever was fitted or trained
  (the ``train`` stage writes the final state beside the model, and every later stage rebuilds the
  attack from params plus that file).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Mapping

import torch

from backdoorlab.data.base import ImageSet
from backdoorlab.models.base import ModelSpec
from backdoorlab.registry import ATTACKS
from backdoorlab.settings import parse_section, require
from backdoorlab.training.loop import BatchHook

LabelMode = Literal["all_to_one", "all_to_all"]


@dataclass(frozen=True)
class PoisonConfig:
    """The knobs every attack has; an attack's ``Config`` subclasses this and adds its own."""

    target: int = 0
    poison_rate: float = 0.1
    label_mode: LabelMode = "all_to_one"


@dataclass(frozen=True)
class PoisonResult:
    train: ImageSet  # the full training set, poisoned samples stamped and relabelled
    poison_indices: torch.Tensor  # int64 positions in ``train`` that were poisoned


@dataclass(frozen=True)
class TriggeredSet(ImageSet):
    """Triggered test images with their true labels (for RA) and the label the attack wants (ASR)."""

    attack_labels: torch.Tensor

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.attack_labels.shape != self.labels.shape:
            raise ValueError("attack_labels must be (N,) and match the images")

    def subset(self, indices: torch.Tensor) -> "TriggeredSet":
        return TriggeredSet(self.images[indices], self.labels[indices], self.attack_labels[indices])


@dataclass(frozen=True)
class AttackerResources:
    """What an attack that fits its trigger may use: its own data (the shadow split, disjoint from
    the victim's training and test data), the victim's architecture, a device and a seed stream."""

    data: ImageSet
    spec: ModelSpec
    device: torch.device
    generator: torch.Generator


class Attack:
    """Base class; subclasses define ``Config`` (a :class:`PoisonConfig` subclass)."""

    Config: ClassVar[type]
    # Label modes that make sense for the method (clean-label attacks cannot relabel).
    label_modes: ClassVar[tuple[str, ...]] = ("all_to_one", "all_to_all")

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

    # -- trigger state -------------------------------------------------------------------------

    def prepare(self, resources: AttackerResources) -> None:
        """Fit the trigger on the attacker's own data (default: nothing to fit)."""

    def training_hook(self, generator: torch.Generator, device: torch.device) -> BatchHook | None:
        """A per-batch hook for the victim's training (default: none; plain data poisoning)."""
        return None

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """Tensors that describe the trigger: saved for the record and reloaded by later stages."""
        return {}

    def load_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        """Restore what :meth:`prepare` or training produced (default: the trigger is a function of
        the config alone, nothing to restore)."""

    # -- labels and sets -----------------------------------------------------------------------

    def attack_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """The label a triggered input of true label ``labels`` should be classified as."""
        if self.config.label_mode == "all_to_all":
            return (labels + 1) % self.num_classes
        return torch.full_like(labels, self.target)

    def candidates(self, labels: torch.Tensor) -> torch.Tensor:
        """Positions whose trigger changes the label: all of them in all-to-all mode."""
        if self.config.label_mode == "all_to_all":
            return torch.arange(len(labels))
        return torch.nonzero(labels != self.target).flatten()

    def poison(self, train: ImageSet, generator: torch.Generator) -> PoisonResult:
        """Stamp and relabel ``round(poison_rate * N)`` samples drawn from the candidates."""
        candidates = self.candidates(train.labels)
        count = round(self.config.poison_rate * len(train))
        require(count <= len(candidates), "poison_rate",
                f"asks for {count} poisoned samples but only {len(candidates)} are candidates")
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values
        images, labels = train.images.clone(), train.labels.clone()
        images[chosen] = self.apply_trigger(images[chosen])
        labels[chosen] = self.attack_labels(labels[chosen])
        return PoisonResult(ImageSet(images, labels), chosen)

    def triggered_test(self, test: ImageSet) -> TriggeredSet:
        """Triggered copies of the test images whose label the trigger changes (true labels kept)."""
        keep = self.candidates(test.labels)
        labels = test.labels[keep]
        return TriggeredSet(self.apply_trigger(test.images[keep]), labels, self.attack_labels(labels))


def check_poison_config(attack: Attack, key: str) -> None:
    """Range checks every attack shares: a valid target, 0 < poison_rate < 1, a supported label mode."""
    config, num_classes = attack.config, attack.num_classes
    require(0 <= config.target < num_classes, f"{key}.target",
            f"must be a class index in [0, {num_classes - 1}], got {config.target}")
    require(0 < config.poison_rate < 1, f"{key}.poison_rate",
            f"must be in (0, 1), got {config.poison_rate}")
    require(config.label_mode in attack.label_modes, f"{key}.label_mode",
            f"{type(attack).__name__} supports {list(attack.label_modes)}, got {config.label_mode!r}")




def build_attack(name: str, section: Mapping[str, Any], image_shape: tuple[int, int, int],
                 num_classes: int) -> Attack:
    """Build the attack instance ``attacks.<name>`` of params.yaml (its ``method`` picks the class)."""
    key = f"attacks.{name}"
    require(isinstance(section, Mapping) and "method" in section, f"{key}.method", "missing required parameter")
    cls = ATTACKS.get(section["method"], f"{key}.method")
    config = parse_section(cls.Config, section, key, ignore=("method",))
    attack = cls(config, image_shape, num_classes)
    check_poison_config(attack, key)
    attack.check(key)
    return attack
