"""Feature Shift Tuning (FST; Min, Qin, Shen, Cheng, NeurIPS 2023).

Plain fine-tuning keeps the backdoored classifier, so the features it relies on (backdoor features
entangled with clean ones, especially at low poisoning rates) barely move. FST re-initialises the
linear classifier and fine-tunes the whole model with cross-entropy plus ``alpha * <W, W_orig>``:
the penalty turns the new classifier away from the original, and so forces the feature extractor
to shift to features the original head did not read. The classifier weight is rescaled to the
original's norm after every step, so the penalty is reduced by turning, not by shrinking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.defenses.weight_anchor import WeightAnchor, uniform_like
from backdoorlab.models.layers import module_by_name
from backdoorlab.settings import check_non_negative, check_positive, require


@DEFENSES.register("fst")
class FeatureShiftTuning(Defense):
    # A larger penalty shifts the features further.
    strength = Strength("alpha", (0.01, 0.02, 0.05, 0.1, 0.2))

    @dataclass(frozen=True)
    class Config:
        alpha: float = 0.2  # weight of the inner-product penalty (the paper's CIFAR-10 value)
        classifier: str = "classifier"  # the linear head to re-initialise
        epochs: int = 10
        batch_size: int = 128
        lr: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 0.0  # the authors' optimizer has none
        augment: bool = True

        def check(self, key: str) -> None:
            check_non_negative(self, key, "alpha", "epochs", "momentum", "weight_decay")
            check_positive(self, key, "batch_size", "lr")
            require(bool(self.classifier), f"{key}.classifier", "name the linear classifier")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        head = module_by_name(model, cfg.classifier, "fst.classifier")
        require(isinstance(head, nn.Linear), "fst.classifier", f"{cfg.classifier!r} is not a linear layer")
        anchor = WeightAnchor([head.weight])
        reinitialise(head, ctx.generator)

        def loss_fn(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return F.cross_entropy(net(x), y) + cfg.alpha * anchor.inner_product()

        finetune(model, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                 momentum=cfg.momentum, weight_decay=cfg.weight_decay, augment=cfg.augment,
                 loss_fn=loss_fn, after_step=anchor.project)
        with torch.no_grad():
            cosine = F.cosine_similarity(head.weight.flatten(), anchor.initial[0].flatten(), dim=0)
        return DefenseOutcome(model, notes={"classifier_cosine": cosine.item()})


@torch.no_grad()
def reinitialise(head: nn.Linear, generator: torch.Generator) -> None:
    """Fresh uniform weights and bias in +-1/sqrt(fan_in) (PyTorch's default scale for a linear
    layer), drawn from the defender's seeded generator."""
    bound = 1.0 / math.sqrt(head.in_features)
    head.weight.copy_(uniform_like(head.weight, bound, generator))
    if head.bias is not None:
        head.bias.copy_(uniform_like(head.bias, bound, generator))
