"""Shared Adversarial Unlearning (Wei et al., NeurIPS 2023).

The backdoor risk of the purified model is bounded by its risk on *shared* adversarial examples:
perturbations that fool both it and the original backdoored model into the same wrong class (a
poisoned input is one). SAU alternates, on every batch of clean data:

1. PGD finds shared adversarial examples x' in an eps-ball, maximising
   ``beta_ce * CE(f(x'), y) + beta_shared * L_shared(x')`` with
   ``L_shared = -log(1 - max_{k != y} min(p_f(k | x'), p_bd(k | x')))``, large exactly when both
   models put their mass on one common wrong class k;
2. the model takes an optimiser step (Adam in the authors' configuration) on
   ``lambda_clean * CE(f(x), y) + lambda_adv * CE(f(x'), y) + lambda_shared * L_shared(x')``,
   so each shared example becomes correctly classified or classified differently from the original.

The backdoored model stays fixed (a frozen copy, in eval mode); PGD runs with the model in eval
mode so its BN statistics only see clean training batches.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.training.gradient_ascent import Objective, pgd
from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.settings import check_non_negative, check_positive
from backdoorlab.training.loop import sgd
from backdoorlab.training.optim import Adam


def shared_adversarial_loss(logits: torch.Tensor, original_logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """-log(1 - max over wrong classes of the smaller of the two models' probabilities), batch mean."""
    shared = torch.minimum(logits.softmax(1), original_logits.softmax(1))
    shared = shared.scatter(1, y.view(-1, 1), 0.0)
    return -torch.log1p(-shared.max(1).values.clamp(max=1 - 1e-6)).mean()


def shared_attack_objective(model: nn.Module, original: nn.Module, y: torch.Tensor, beta_ce: float,
                            beta_shared: float) -> Objective:
    """What PGD maximises to find shared adversarial examples of ``model`` and ``original``."""

    def objective(x_adv: torch.Tensor) -> torch.Tensor:
        logits = model(x_adv)
        return (beta_ce * F.cross_entropy(logits, y)
                + beta_shared * shared_adversarial_loss(logits, original(x_adv), y))

    return objective


@DEFENSES.register("sau")
class SharedAdversarialUnlearning(Defense):
    # A larger budget finds (and unlearns) more shared adversarial examples.
    strength = Strength("eps", (0.05, 0.1, 0.2, 0.3, 0.4))

    @dataclass(frozen=True)
    class Config:
        norm: Literal["linf", "l2"] = "linf"
        eps: float = 0.2
        pgd_steps: int = 5
        pgd_step_size: float = 0.2
        beta_ce: float = 0.01  # PGD objective: weight of the model's own cross-entropy
        beta_shared: float = 1.0  # PGD objective: weight of the shared adversarial loss
        lambda_clean: float = 1.0
        lambda_adv: float = 0.0  # vanilla adversarial-training term (off in the paper's default)
        lambda_shared: float = 1.0
        epochs: int = 100
        batch_size: int = 256
        optimizer: Literal["adam", "sgd"] = "adam"  # the authors' configuration: Adam, lr 1e-4, cosine
        lr: float = 1e-4
        momentum: float = 0.9  # SGD only
        weight_decay: float = 0.0
        augment: bool = True

        def check(self, key: str) -> None:
            check_positive(self, key, "eps", "pgd_step_size", "batch_size", "lr")
            check_non_negative(self, key, "pgd_steps", "beta_ce", "beta_shared", "lambda_clean", "lambda_adv",
                               "lambda_shared", "epochs", "momentum", "weight_decay")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        original = copy.deepcopy(model).eval()
        for param in original.parameters():
            param.requires_grad_(False)

        def loss_fn(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            net.eval()
            objective = shared_attack_objective(net, original, y, cfg.beta_ce, cfg.beta_shared)
            x_adv = pgd(objective, x, eps=cfg.eps, norm=cfg.norm, steps=cfg.pgd_steps,
                        step_size=cfg.pgd_step_size, random_start=True, generator=ctx.generator)
            net.train()
            with torch.no_grad():
                original_adv = original(x_adv)
            adv_logits = net(x_adv)
            return (cfg.lambda_clean * F.cross_entropy(net(x), y)
                    + cfg.lambda_adv * F.cross_entropy(adv_logits, y)
                    + cfg.lambda_shared * shared_adversarial_loss(adv_logits, original_adv, y))

        optimizer = (Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
                     if cfg.optimizer == "adam" else sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay))
        finetune(model, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr, augment=cfg.augment,
                 loss_fn=loss_fn, optimizer=optimizer)
        return DefenseOutcome(model)
