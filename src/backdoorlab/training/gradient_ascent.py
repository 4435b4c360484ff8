"""Projected gradient ascent in pixel space, shared by the adversarial-example sequela and by the
defenses that unlearn adversarial perturbations (i-BAU, SAU).

Perturbations live in pixel space [0, 1] (models normalise inside), so eps is in pixel units.
``pgd`` maximises any objective of the perturbed batch; ``perturb`` is the classic untargeted
attack (Madry et al. 2018) that maximises cross-entropy. One step of size eps without a random
start is FGSM.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["linf", "l2"]
Objective = Callable[[torch.Tensor], torch.Tensor]


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The steepest-ascent unit step for each sample (first dimension) under ``norm``."""
    if norm == "linf":
        return grad.sign()
    flat = grad.flatten(1).norm(dim=1).clamp_min(1e-12)
    return grad / flat.view(-1, *([1] * (grad.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project each sample's perturbation onto the eps-ball of ``norm``."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    flat = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
    return delta * (eps / flat).clamp(max=1.0).view(-1, *([1] * (delta.dim() - 1)))


def pgd(objective: Objective, x: torch.Tensor, *, eps: float, norm: str, steps: int,
        step_size: float, random_start: bool, generator: torch.Generator) -> torch.Tensor:
    """Maximise ``objective(x_adv)`` (a scalar) over x_adv in the eps-ball around x, in [0, 1]."""
    delta = torch.zeros_like(x)
    if random_start:
        delta = project((torch.rand(x.shape, generator=generator).to(x.device) * 2 - 1) * eps, eps, norm)
    delta = ((x + delta).clamp(0, 1) - x).requires_grad_(True)
    for _ in range(steps):
        (grad,) = torch.autograd.grad(objective(x + delta), delta)
        step = delta.detach() + step_size * ascent_direction(grad, norm)
        delta = ((x + project(step, eps, norm)).clamp(0, 1) - x).requires_grad_(True)
    return (x + delta).detach()


def perturb(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, eps: float, norm: str,
            steps: int, step_size: float, random_start: bool, generator: torch.Generator) -> torch.Tensor:
    """Untargeted PGD: maximise the cross-entropy of the true labels within the eps-ball."""
    return pgd(lambda x_adv: F.cross_entropy(model(x_adv), y), x, eps=eps, norm=norm, steps=steps,
               step_size=step_size, random_start=random_start, generator=generator)
