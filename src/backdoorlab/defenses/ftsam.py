"""Fine-tuning with sharpness-aware minimisation (FT-SAM; Zhu et al., ICCV 2023).

Backdoor neurons tend to have large weight norms, and plain fine-tuning on little clean data
barely moves them. SAM (Foret et al., ICLR 2021) minimises the loss at the worst point within
radius ``rho`` of the weights: each step first ascends to ``w + e`` (one forward/backward), then
descends with the gradient taken there (a second forward/backward). FT-SAM uses a large radius in
the *adaptive* form (ASAM: the perturbation scaled elementwise by ``|w|``, so large weights, which
backdoor neurons tend to have, are perturbed most) and label smoothing.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import sgd
from backdoorlab.training.optim import Optimizer


@contextlib.contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """BatchNorm still normalises by batch statistics but leaves its running averages alone, so
    SAM's second pass over the same batch does not count it twice."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [m.momentum for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield
    finally:
        for m, momentum in zip(norms, saved):
            m.momentum = momentum


class SharpnessAwareStep:
    """One (A)SAM update: ascend to the worst nearby weights, descend with the gradient found there.

    ASAM's perturbation is ``e = rho * T^2 g / ||T g||`` with ``T = |w|`` (``T = 1``: plain SAM).
    """

    def __init__(self, optimizer: Optimizer, rho: float, adaptive: bool,
                 label_smoothing: float) -> None:
        self.optimizer = optimizer
        self.rho = rho
        self.adaptive = adaptive
        self.label_smoothing = label_smoothing

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y, label_smoothing=self.label_smoothing)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        params = [p for group in self.optimizer.param_groups for p in group["params"] if p.requires_grad]
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(model, x, y)
        loss.backward()
        originals = self._ascend(params)
        self.optimizer.zero_grad(set_to_none=True)
        with frozen_batchnorm_stats(model):
            self.loss(model, x, y).backward()
        with torch.no_grad():
            for p, original in zip(params, originals):
                p.copy_(original)
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def _ascend(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        """Move every parameter to ``w + e`` in place; return the original values."""
        scales = [p.abs() if self.adaptive else torch.ones_like(p) for p in params]
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(t * g) for t, g in zip(scales, grads)]))
        originals = [p.clone() for p in params]
        for p, t, g in zip(params, scales, grads):
            p.add_(t * t * g * (self.rho / (norm + 1e-12)))
        return originals


@DEFENSES.register("ftsam")
class FineTuningSAM(Defense):
    # A larger radius perturbs (and moves) the large weights more.
    strength = Strength("rho", (0.5, 1.0, 2.0, 4.0, 8.0))

    @dataclass(frozen=True)
    class Config:
        rho: float = 2.0  # FT-SAM's radius (large: ASAM's radius is relative to |w|)
        adaptive: bool = True
        label_smoothing: float = 0.1
        epochs: int = 100
        batch_size: int = 256
        lr: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 5e-4
        augment: bool = True

        def check(self, key: str) -> None:
            check_non_negative(self, key, "rho", "epochs", "momentum", "weight_decay")
            check_positive(self, key, "batch_size", "lr")
            require(0 <= self.label_smoothing < 1, f"{key}.label_smoothing",
                    f"must be in [0, 1), got {self.label_smoothing}")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        optimizer = sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay)
        step = SharpnessAwareStep(optimizer, cfg.rho, cfg.adaptive, cfg.label_smoothing)
        finetune(model, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                 augment=cfg.augment, optimizer=optimizer, step_fn=step)
        return DefenseOutcome(model)
