"""Untargeted adversarial examples: FGSM (Goodfellow et al. 2015) and PGD (Madry et al. 2018),
under an Linf or L2 budget.

Perturbations live in pixel space [0, 1] (models normalise inside), so eps is in pixel units:
8/255 on CIFAR-10 is eps 0.031. Reports, per eps, robust accuracy (still correct) and attack
success rate (among images the model got right, the fraction flipped), on the first ``images``
clean test images (the test split is already shuffled, and every cell sees the same images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from backdoorlab.training.gradient_ascent import perturb
from backdoorlab.sequela.base import SEQUELA, SequelaAttack, SequelaContext
from backdoorlab.settings import check_positive, require
from backdoorlab.training.loop import to_float


def check_budget(config: object, key: str) -> None:
    eps = getattr(config, "eps")
    require(len(eps) > 0 and all(e > 0 for e in eps), f"{key}.eps", "must be a non-empty list of positive numbers")
    check_positive(config, key, "images", "batch_size")


class AdversarialExamples(SequelaAttack):
    """The measurement shared by FGSM and PGD; subclasses say how to search the eps-ball."""

    def search(self, eps: float) -> tuple[int, float, bool]:
        """``(steps, step_size, random_start)`` for budget ``eps``."""
        raise NotImplementedError

    def run(self, model: nn.Module, ctx: SequelaContext) -> dict[str, float]:
        cfg = self.config
        model.eval()
        test = ctx.clean_test.subset(torch.arange(min(cfg.images, len(ctx.clean_test))))
        results: dict[str, float] = {}
        for eps in cfg.eps:
            steps, step_size, random_start = self.search(eps)
            correct_clean = correct_adv = flipped = 0
            for i in range(0, len(test), cfg.batch_size):
                x = to_float(test.images[i:i + cfg.batch_size], ctx.device)
                y = test.labels[i:i + cfg.batch_size].to(ctx.device)
                x_adv = perturb(model, x, y, eps=eps, norm=cfg.norm, steps=steps, step_size=step_size,
                                random_start=random_start, generator=ctx.generator)
                with torch.no_grad():
                    clean_ok = model(x).argmax(1) == y
                    adv_ok = model(x_adv).argmax(1) == y
                correct_clean += clean_ok.sum().item()
                correct_adv += adv_ok.sum().item()
                flipped += (clean_ok & ~adv_ok).sum().item()
            results[f"robust_acc@{eps:g}"] = correct_adv / len(test)
            results[f"success@{eps:g}"] = flipped / max(correct_clean, 1)
        return results

    def headline(self, metric: str) -> bool:
        return metric.startswith("robust_acc@")


@SEQUELA.register("fgsm")
class FGSM(AdversarialExamples):
    """One signed-gradient (Linf) or normalised-gradient (L2) step of size eps, no random start."""

    @dataclass(frozen=True)
    class Config:
        norm: Literal["linf", "l2"] = "linf"
        eps: list[float] = (0.02, 0.05, 0.1)  # type: ignore[assignment]
        images: int = 500  # clean test images attacked
        batch_size: int = 250

        def check(self, key: str) -> None:
            check_budget(self, key)

    def search(self, eps: float) -> tuple[int, float, bool]:
        return 1, eps, False

    def headline(self, metric: str) -> bool:
        return False  # PGD's one-step special case: its numbers go to the tables, PGD's to the summary


@SEQUELA.register("pgd")
class PGD(AdversarialExamples):
    """Projected gradient ascent on the cross-entropy from a random start inside the eps-ball."""

    @dataclass(frozen=True)
    class Config:
        norm: Literal["linf", "l2"] = "linf"
        eps: list[float] = (0.02, 0.05, 0.1)  # type: ignore[assignment]
        steps: int = 10
        step_ratio: float = 0.25  # step size as a fraction of eps
        random_start: bool = True
        images: int = 500  # clean test images attacked
        batch_size: int = 250

        def check(self, key: str) -> None:
            check_budget(self, key)
            check_positive(self, key, "steps", "step_ratio")

    def search(self, eps: float) -> tuple[int, float, bool]:
        return self.config.steps, self.config.step_ratio * eps, self.config.random_start
