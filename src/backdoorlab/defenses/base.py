"""The defense interface: a defender holds a suspect model and a small clean data set.

A params.yaml entry under ``defenses`` is a *named instance* of a method: ``method`` picks the
class, ``clean_fraction`` (optional) overrides how much clean training data this defender holds
(``data.defense_fraction`` otherwise), ``calibrate`` (optional) makes it a *calibrated* instance
(see :mod:`backdoorlab.defenses.calibration`), and every other key is the method's own ``Config``.
So an ablation (``sft`` and ``sft_peak2``, both ``method: sft``) is just one more entry.

A defense never sees triggered data, poison indices, the target or test data: only
``DefenseContext``, whose clean data are split into a part to train on (``clean``) and a held-out
part (``validation``) on which the defender may measure what its defense costs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Sequence

import torch
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.models.base import ModelSpec, build_model
from backdoorlab.registry import DEFENSES  # each defense module registers through its base
from backdoorlab.training.augment import AugmentConfig
from backdoorlab.training.loop import LossFn, StepFn, cross_entropy, fit, sgd, steps_per_epoch
from backdoorlab.training.schedules import cosine
from backdoorlab.training.optim import Optimizer


@dataclass
class DefenseContext:
    """What a defender has: clean data, the model's blueprint, compute, and a seeded generator.

    ``clean`` is what the defense trains on; ``validation`` is the defender's held-out clean data
    (disjoint from ``clean``), for choices a defense makes by clean accuracy (Fine-Pruning's
    stopping point, calibration) and for the stage's utility check."""

    clean: ImageSet
    validation: ImageSet
    spec: ModelSpec
    device: torch.device
    generator: torch.Generator
    augment: AugmentConfig | None  # the training augmentation, for defenses that fine-tune
    label: str = "defend"

    def fresh_model(self) -> nn.Module:
        """A newly initialised model of the same architecture (e.g. for a re-initialised head)."""
        return build_model(self.spec).to(self.device)


@dataclass
class DefenseOutcome:
    model: nn.Module
    # Method-specific facts worth reporting (channels pruned, classes flagged, ...): JSON scalars.
    notes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Strength:
    """The knob that trades backdoor removal against clean accuracy, with a default grid of its
    values ordered **weakest first** (for D3's ``lam`` that is descending: a smaller weight on
    the clean loss pushes harder). Calibration searches this grid.

    The grid's weakest value should be a near no-op, so that "no value within budget" means that
    nothing removes the backdoor within budget, not that the grid started too strong. Where the
    knob alone cannot get there, ``floor`` names the other settings its weakest value runs with
    (D3 keeps the classifier instead of re-drawing it)."""

    knob: str
    grid: Sequence[float]
    floor: Mapping[str, Any] = field(default_factory=dict)


class Defense:
    """Base class. Subclasses define a ``Config`` dataclass and ``apply``, and name their
    ``strength`` knob (``None`` for a defense with nothing to calibrate)."""

    Config: ClassVar[type]
    strength: ClassVar[Strength | None] = None

    def __init__(self, config: Any) -> None:
        self.config = config

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        """Return the defended model; ``model`` is a private copy the defense may modify."""
        raise NotImplementedError




def finetune(model: nn.Module, ctx: DefenseContext, *, epochs: int, batch_size: int, lr: float,
             momentum: float = 0.9, weight_decay: float = 5e-4, augment: bool = True,
             schedule: Callable[[int], float] | None = None, loss_fn: LossFn = cross_entropy,
             after_step: Callable[[], None] | None = None, data: ImageSet | None = None,
             optimizer: Optimizer | None = None, step_fn: StepFn | None = None) -> None:
    """Fine-tune ``model`` in place on the clean subset (or ``data``): SGD, cosine LR by default.

    ``step_fn`` replaces the plain gradient step (see ``fit``); it must step ``optimizer``."""
    data = ctx.clean if data is None else data
    total_steps = epochs * steps_per_epoch(len(data), batch_size)
    fit(model, data, epochs=epochs, batch_size=batch_size,
        optimizer=optimizer or sgd(model, lr, momentum, weight_decay),
        schedule=schedule or cosine(lr, total_steps), generator=ctx.generator,
        augment=ctx.augment if augment else None, device=ctx.device, loss_fn=loss_fn,
        after_step=after_step, label=ctx.label, step_fn=step_fn)


def total_steps(epochs: int, n: int, batch_size: int) -> int:
    return epochs * steps_per_epoch(n, batch_size)

