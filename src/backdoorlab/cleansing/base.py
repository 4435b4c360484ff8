"""What a data-cleansing defender has, what it returns, and the representations it reads."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.paradigms.composed import encoder_of
from backdoorlab.registry import Registry
from backdoorlab.training.loop import predict_logits


@dataclass(frozen=True)
class CleansingContext:
    """The defender's view: the training set as received (poisoned samples unflagged), the number
    of classes, compute and a seeded generator. No poison indices, no trigger."""

    train: ImageSet
    num_classes: int
    device: torch.device
    generator: torch.Generator


@dataclass
class Detection:
    """Positions in ``ctx.train`` the defender flags as poisoned, and facts worth reporting."""

    flagged: torch.Tensor
    notes: dict[str, Any] = field(default_factory=dict)


def representations(model: nn.Module, images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """The model's penultimate features (the input of its ``classifier``) of uint8 ``images``,
    the representation both Activation Clustering and Spectral Signatures read."""
    return predict_logits(encoder_of(model), images, device)


class Cleanser:
    """A data-cleansing defense: ``detect(model, ctx)`` flags suspicious training samples."""

    registry_name: ClassVar[str]

    @dataclass(frozen=True)
    class Config:
        def check(self, key: str) -> None:
            """Raise ``ConfigError`` naming ``key`` for a bad value."""

    def __init__(self, config: Config) -> None:
        self.config = config

    def detect(self, model: nn.Module, ctx: CleansingContext) -> Detection:
        raise NotImplementedError


CLEANSERS: Registry[Cleanser] = Registry("training-time defense")
