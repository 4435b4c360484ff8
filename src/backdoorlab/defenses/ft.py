"""Vanilla fine-tuning on the defender's clean subset (SGD, cosine schedule)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.settings import check_non_negative, check_positive


@DEFENSES.register("ft")
class FineTuning(Defense):
    # A larger LR moves the weights further from the backdoored ones.
    strength = Strength("lr", (0.001, 0.003, 0.01, 0.03, 0.1))

    @dataclass(frozen=True)
    class Config:
        epochs: int = 20
        batch_size: int = 128
        lr: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 5e-4
        augment: bool = True

        def check(self, key: str) -> None:
            check_non_negative(self, key, "epochs", "momentum", "weight_decay")
            check_positive(self, key, "batch_size", "lr")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        finetune(model, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                 momentum=cfg.momentum, weight_decay=cfg.weight_decay, augment=cfg.augment)
        return DefenseOutcome(model)
