"""Selected weights pushed away from their initial values while held at their initial norm.

D3 maximises the distance of selected layers from their backdoored weights; FST pushes the new
classifier away from the original one. Both rescale each weight back to its initial norm after
every optimizer step: without that projection the distance (or the negative inner product) could
grow by mere scaling, which moves no decision boundary of the layer and makes the objective
unbounded.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class WeightAnchor:
    """The initial values and p-norms of some weights, to measure and constrain their drift."""

    def __init__(self, weights: Sequence[nn.Parameter], p: float = 2.0) -> None:
        self.weights = list(weights)
        self.p = p
        self.initial = [w.detach().clone() for w in self.weights]
        self.norms = [torch.linalg.vector_norm(w, ord=p) for w in self.initial]

    def distance(self) -> torch.Tensor:
        """``sum_l ||W_l - W_l0||_p``, differentiable in the current weights."""
        return torch.stack([torch.linalg.vector_norm(w - w0, ord=self.p)
                            for w, w0 in zip(self.weights, self.initial)]).sum()

    def inner_product(self) -> torch.Tensor:
        """``sum_l <W_l, W_l0>``, differentiable in the current weights (FST's penalty)."""
        return torch.stack([(w * w0).sum() for w, w0 in zip(self.weights, self.initial)]).sum()

    def norm_ratios(self) -> list[float]:
        """Each weight's current p-norm over its initial one (1.0 right after ``project``)."""
        return [(torch.linalg.vector_norm(w.detach(), ord=self.p) / n).item()
                for w, n in zip(self.weights, self.norms)]

    @torch.no_grad()
    def project(self) -> None:
        """Rescale every weight back to its initial p-norm (call after each optimizer step).

        A weight that is exactly zero (D3's ``zero`` warm start, before its first step) has no
        direction to rescale along and stays zero."""
        for weight, norm in zip(self.weights, self.norms):
            current = torch.linalg.vector_norm(weight, ord=self.p)
            if current > 0:
                weight.mul_(norm / current)


def uniform_like(tensor: torch.Tensor, bound: float, generator: torch.Generator) -> torch.Tensor:
    """Uniform draws in [-bound, bound] shaped like ``tensor``, from the defender's seeded (CPU)
    generator whatever the tensor's device, so a defense is reproducible on CPU and GPU alike."""
    draws = torch.empty(tensor.shape).uniform_(-bound, bound, generator=generator)
    return draws.to(device=tensor.device, dtype=tensor.dtype)
