"""Untargeted adversarial examples: FGSM and PGD under an Linf or L2 budget (Madry et al. 2018).

Perturbations live in pixel space [0, 1] (models normalise inside), so eps is in pixel units:
8/255 on CIFAR-10 is eps 0.031. Reports, per eps, robust accuracy (still correct) and attack
success rate (among images the model got right, the fraction flipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.sequela.base import SEQUELA, SequelaAttack, SequelaContext
from backdoorlab.settings import require
from backdoorlab.training.loop import to_float


def _normalize_step(grad: torch.Tensor, norm: str) -> torch.Tensor:
    if norm == "linf":
        return grad.sign()
    flat = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / flat.view(-1, 1, 1, 1)


def _project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * (eps / flat).clamp(max=1.0).view(-1, 1, 1, 1)


def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
            steps: int, step_size: float, random_start: bool, generator: torch.Generator) -> torch.Tensor:
    """Maximise the loss within the eps-ball around x (one step of size eps is FGSM)."""
    delta = torch.zeros_like(x)
    if random_start:
        delta = _project((torch.rand(x.shape, generator=generator).to(x.device) * 2 - 1) * eps, eps, norm)
    delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
    for _ in range(steps):
        loss = F.cross_entropy(model(x + delta), y)
        (grad,) = torch.autograd.grad(loss, delta)
        step = delta.detach() + step_size * _normalize_step(grad, norm)
        delta = ((x + _project(step, eps, norm)).clamp(0, 1) - x).requires_grad_(True)
    return (x + delta).detach()


@SEQUELA.register("adversarial")
class AdversarialExamples(SequelaAttack):
    @dataclass(frozen=True)
    class Config:
        norm: Literal["linf", "l2"] = "linf"
        eps: list[float] = (0.02, 0.05, 0.1)  # type: ignore[assignment]
        steps: int = 10  # 1 step with step_ratio 1 and no random start is FGSM
        step_ratio: float = 0.25  # step size as a fraction of eps
        random_start: bool = True
        images: int = 500  # clean test images attacked
        batch_size: int = 250

        def check(self, key: str) -> None:
            require(len(self.eps) > 0 and all(e > 0 for e in self.eps), f"{key}.eps",
                    "must be a non-empty list of positive numbers")
            for name in ("steps", "images", "batch_size"):
                require(getattr(self, name) > 0, f"{key}.{name}", "must be > 0")
            require(self.step_ratio > 0, f"{key}.step_ratio", "must be > 0")

    def run(self, model: nn.Module, ctx: SequelaContext) -> dict[str, float]:
        cfg = self.config
        model.eval()
        test = ctx.clean_test.subset(torch.arange(min(cfg.images, len(ctx.clean_test))))
        results: dict[str, float] = {}
        for eps in cfg.eps:
            correct_clean = correct_adv = flipped = 0
            for i in range(0, len(test), cfg.batch_size):
                x = to_float(test.images[i:i + cfg.batch_size], ctx.device)
                y = test.labels[i:i + cfg.batch_size].to(ctx.device)
                x_adv = perturb(model, x, y, eps=eps, norm=cfg.norm, steps=cfg.steps,
                                step_size=cfg.step_ratio * eps, random_start=cfg.random_start,
                                generator=ctx.generator)
                with torch.no_grad():
                    clean_ok = model(x).argmax(1) == y
                    adv_ok = model(x_adv).argmax(1) == y
                correct_clean += clean_ok.sum().item()
                correct_adv += adv_ok.sum().item()
                flipped += (clean_ok & ~adv_ok).sum().item()
            results[f"robust_acc@{eps:g}"] = correct_adv / len(test)
            results[f"success@{eps:g}"] = flipped / max(correct_clean, 1)
        return results
