"""Super-fine-tuning (Sha et al., 2022): fine-tuning with a two-phase cyclic learning rate.

Both phases move the LR linearly up and down between ``base_lr`` and a peak, in triangular cycles
of ``2 * half_cycle_steps`` steps. Phase one's large peak pushes the weights far from the
backdoored solution; phase two's small peak lets them settle into a good clean minimum.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from backdoorlab.defenses.base import (DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength,
                                       finetune, total_steps)
from backdoorlab.settings import check_non_negative, check_positive
from backdoorlab.training.schedules import phases, triangular


@DEFENSES.register("sft")
class SuperFineTuning(Defense):
    # A larger first-phase peak pushes the weights further; the weakest, the second phase's peak,
    # makes phase one plain fine-tuning at LR 0.03-0.05 (a near no-op on the backdoor).
    strength = Strength("peak_lr_1", (0.05, 0.25, 0.5, 1.0, 1.5, 2.0, 2.5))

    @dataclass(frozen=True)
    class Config:
        # The paper's own values are unconfirmed; these are the public re-implementation's
        # (METHODS.md): base 0.03, peak 2.5 for 40 epochs, then peak 0.05 for 60, 10-step ramps.
        base_lr: float = 0.03
        peak_lr_1: float = 2.5
        peak_lr_2: float = 0.05
        epochs_1: int = 40
        epochs_2: int = 60
        half_cycle_steps: int = 10
        batch_size: int = 128
        momentum: float = 0.0  # the public re-implementation uses plain SGD
        weight_decay: float = 5e-4
        augment: bool = True

        def check(self, key: str) -> None:
            check_non_negative(self, key, "epochs_1", "epochs_2", "momentum", "weight_decay", "base_lr")
            check_positive(self, key, "peak_lr_1", "peak_lr_2", "half_cycle_steps", "batch_size")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        n = len(ctx.clean)
        schedule = phases(
            (triangular(cfg.base_lr, cfg.peak_lr_1, cfg.half_cycle_steps),
             total_steps(cfg.epochs_1, n, cfg.batch_size)),
            (triangular(cfg.base_lr, cfg.peak_lr_2, cfg.half_cycle_steps),
             total_steps(cfg.epochs_2, n, cfg.batch_size)),
        )
        finetune(model, ctx, epochs=cfg.epochs_1 + cfg.epochs_2, batch_size=cfg.batch_size,
                 lr=cfg.base_lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                 augment=cfg.augment, schedule=schedule)
        return DefenseOutcome(model)
