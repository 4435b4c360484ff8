"""What a data-cleansing defender has, what it returns, and the representations it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Iterator, Mapping

import torch
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.models.base import ModelSpec
from backdoorlab.paradigms.composed import encoder_of
from backdoorlab.registry import CLEANSERS
from backdoorlab.settings import parse_section, require
from backdoorlab.training.loop import OptimConfig, predict_logits
from backdoorlab.training.recipe import init_model, train_with_recipe


@dataclass(frozen=True)
class CleansingContext:
    """The defender's view: the training set as received (poisoned samples unflagged), the model
    blueprint and training recipe it trains with, compute and seeds. No poison indices, no trigger."""

    train: ImageSet
    spec: ModelSpec
    recipe: OptimConfig
    device: torch.device
    generator: torch.Generator
    init_seed: int  # the retrained model's initialisation
    label: str = "cleanse"


@dataclass
class Detection:
    """Positions in ``ctx.train`` the defender flags as poisoned, and facts worth reporting."""

    flagged: torch.Tensor
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass
class CleansingOutcome:
    model: nn.Module  # the model the defender ends up with
    detection: Detection


def representations(model: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The model's penultimate features (the input of its ``classifier``) of uint8 ``images``,
    the representation both Activation Clustering and Spectral Signatures read."""
    return predict_logits(encoder_of(model), images, device)


def class_positions(train: ImageSet, num_classes: int) -> Iterator[tuple[int, torch.Tensor]]:
    """``(label, positions in train)`` for every class: both detectors work one class at a time."""
    for label in range(num_classes):
        yield label, torch.nonzero(train.labels == label).flatten()


def merged(flagged: list[torch.Tensor]) -> torch.Tensor:
    """The per-class flagged positions as one sorted tensor (empty when nothing was flagged)."""
    return torch.cat(flagged).sort().values if flagged else torch.empty(0, dtype=torch.long)


class Cleanser:
    """A training-time defense: ``defend(trained, ctx)`` returns the defender's final model and
    the samples it flagged. ``trained`` is the model the defender's recipe produced on the data as
    received (the backdoored model: the defender trains, so it is the defender's own)."""

    registry_name: ClassVar[str]

    def __init__(self, config: Any) -> None:
        self.config = config

    def defend(self, trained: nn.Module, ctx: CleansingContext) -> CleansingOutcome:
        raise NotImplementedError


class DetectThenRetrain(Cleanser):
    """Flag samples from the trained model's representations, drop them, retrain from scratch with
    the same recipe (the cost the paper compares fine-tuning against)."""

    def detect(self, trained: nn.Module, ctx: CleansingContext) -> Detection:
        raise NotImplementedError

    def defend(self, trained: nn.Module, ctx: CleansingContext) -> CleansingOutcome:
        detection = self.detect(trained, ctx)
        keep = torch.ones(len(ctx.train), dtype=torch.bool)
        keep[detection.flagged] = False
        model = init_model(ctx.spec, ctx.init_seed, ctx.device)
        train_with_recipe(model, ctx.train.subset(torch.nonzero(keep).flatten()), ctx.recipe,
                          generator=ctx.generator, device=ctx.device, label=f"{ctx.label}: retrain")
        return CleansingOutcome(model, detection)




def build_cleanser(name: str, section: Mapping[str, Any]) -> Cleanser:
    """Build the instance ``cleansers.<name>`` of params.yaml (its ``method`` picks the class)."""
    key = f"cleansers.{name}"
    require(isinstance(section, Mapping) and "method" in section, f"{key}.method", "missing required parameter")
    cls = CLEANSERS.get(section["method"], f"{key}.method")
    return cls(parse_section(cls.Config, section, key, ignore=("method",)))  # type: ignore[attr-defined]
