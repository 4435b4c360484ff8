"""i-BAU (Zeng et al., ICLR 2022): implicit backdoor adversarial unlearning.

A backdoor trigger is a universal perturbation: one pattern that sends every input to the target.
i-BAU therefore solves ``min_theta max_delta H(delta, theta)``, H the clean loss of the data with
one shared perturbation ``delta`` (the UAP) added. Each round, the inner maximisation finds the UAP
by projected gradient ascent in an eps-ball (L2 by default: a patch trigger has a small L2 norm
but a large Linf norm); the outer minimisation then updates the model on clean data carrying that
UAP, with the *implicit hypergradient* of H, which also accounts for how the inner solution moves
with the model.

The inner solution is a fixed point of one ascent step of the inner objective
``Phi(delta, theta) = delta + inner_lr * grad_delta [CE(f_theta(x + delta), y) - inner_l2 |delta|^2]``.
By the implicit function theorem the hypergradient is
``dH/dtheta = dH/dtheta|_direct + (dPhi/dtheta)^T (I - dPhi/ddelta)^-T dH/ddelta``; the inverse is
approximated by ``fixed_point_iterations`` terms of its Neumann series (the fixed-point iteration
``v <- dH/ddelta + (dPhi/ddelta)^T v``), each one vector-Jacobian product through the graph of Phi.
As in the paper, the model step uses Adam and the UAP search does not augment.

Simplifications, named: the UAP comes from ``uap_steps`` projected (normalised-gradient) ascent
steps on random clean batches, so it is only an approximate maximiser and usually sits on the
eps-sphere, where the unprojected map Phi is not exactly at its fixed point (the hypergradient
treats it as if it were, as the authors' implementation does); Phi and the outer loss use the
current batch only; Phi runs the model in eval mode (the inner problem's model), the outer loss in
train mode (BN statistics follow the unlearning batches, as in fine-tuning).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.training.gradient_ascent import ascent_direction, project
from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import steps_per_epoch, to_float
from backdoorlab.training.optim import Adam

TensorFn = Callable[[torch.Tensor], torch.Tensor]


def implicit_hypergradient(params: Sequence[torch.Tensor], inner: torch.Tensor, outer_loss: TensorFn,
                           fixed_point_map: TensorFn, iterations: int) -> list[torch.Tensor]:
    """Gradient of ``outer_loss(inner*(params))`` w.r.t. ``params``, ``inner*`` a fixed point of
    ``fixed_point_map`` (which must be differentiable in both its argument and ``params``)."""
    inner = inner.detach().requires_grad_(True)
    grad_inner, *direct = torch.autograd.grad(outer_loss(inner), [inner, *params], allow_unused=True)
    mapped = fixed_point_map(inner)
    v = grad_inner
    for _ in range(iterations):
        (jvp,) = torch.autograd.grad(mapped, inner, grad_outputs=v, retain_graph=True)
        v = grad_inner + jvp
    indirect = torch.autograd.grad(mapped, params, grad_outputs=v, allow_unused=True)
    total = []
    for param, *parts in zip(params, direct, indirect):
        present = [g for g in parts if g is not None]
        total.append(sum(present[1:], present[0]) if present else torch.zeros_like(param))
    return total


@DEFENSES.register("ibau")
class ImplicitBackdoorAdversarialUnlearning(Defense):
    # A larger perturbation budget unlearns stronger triggers.
    strength = Strength("eps", (1.0, 2.0, 3.0, 5.0, 8.0))

    @dataclass(frozen=True)
    class Config:
        rounds: int = 5
        batch_size: int = 100
        outer_lr: float = 1e-3  # Adam on the model
        norm: Literal["linf", "l2"] = "l2"
        eps: float = 3.0  # pixel units; an L2 of 3 covers a fully white 3x3 patch
        uap_steps: int = 10  # projected ascent steps of the UAP per round (one batch each)
        uap_step_ratio: float = 0.25  # UAP step size as a fraction of eps
        inner_lr: float = 0.1  # step of the fixed-point map Phi
        inner_l2: float = 1e-3  # L2 penalty on the UAP inside Phi
        fixed_point_iterations: int = 5  # Neumann-series terms of the inverse Hessian product
        perturbed_fraction: float = 1.0  # share of each batch carrying the UAP in the outer loss

        def check(self, key: str) -> None:
            check_positive(self, key, "batch_size", "outer_lr", "eps", "uap_step_ratio", "inner_lr")
            check_non_negative(self, key, "rounds", "uap_steps", "inner_l2", "fixed_point_iterations")
            require(0 <= self.perturbed_fraction <= 1, f"{key}.perturbed_fraction",
                    f"must be in [0, 1], got {self.perturbed_fraction!r}")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = Adam(params, lr=cfg.outer_lr)
        batches = steps_per_epoch(len(ctx.clean), cfg.batch_size)
        uap_norms = []
        for _ in range(cfg.rounds):
            uap = self.universal_perturbation(model, ctx)
            uap_norms.append(round(uap.flatten().norm().item(), 3))
            order = torch.randperm(len(ctx.clean), generator=ctx.generator)
            for b in range(batches):
                idx = order[b * cfg.batch_size:(b + 1) * cfg.batch_size]
                x, y = to_float(ctx.clean.images[idx], ctx.device), ctx.clean.labels[idx].to(ctx.device)
                carries = (torch.rand(len(x), generator=ctx.generator) < cfg.perturbed_fraction)
                carries = carries.to(ctx.device).view(-1, 1, 1, 1).float()

                def outer_loss(delta: torch.Tensor) -> torch.Tensor:
                    model.train()
                    return F.cross_entropy(model((x + carries * delta).clamp(0, 1)), y)

                def fixed_point_map(delta: torch.Tensor) -> torch.Tensor:
                    model.eval()
                    (grad,) = torch.autograd.grad(self.inner_objective(model, x, y, delta), delta,
                                                  create_graph=True)
                    return delta + cfg.inner_lr * grad

                grads = implicit_hypergradient(params, uap, outer_loss, fixed_point_map,
                                               cfg.fixed_point_iterations)
                optimizer.zero_grad(set_to_none=True)
                for p, g in zip(params, grads):
                    p.grad = g
                optimizer.step()
        model.train()
        return DefenseOutcome(model, {"uap_norms": uap_norms})

    def inner_objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        delta: torch.Tensor) -> torch.Tensor:
        """What the UAP maximises: the clean loss under ``delta``, minus a small L2 penalty."""
        return F.cross_entropy(model((x + delta).clamp(0, 1)), y) - self.config.inner_l2 * delta.pow(2).sum()

    def universal_perturbation(self, model: nn.Module, ctx: DefenseContext) -> torch.Tensor:
        """Projected gradient ascent on one perturbation shared by all images (model in eval mode)."""
        cfg = self.config
        model.eval()
        delta = torch.zeros(1, *ctx.clean.images.shape[1:], device=ctx.device)
        for _ in range(cfg.uap_steps):
            idx = torch.randint(0, len(ctx.clean), (min(cfg.batch_size, len(ctx.clean)),), generator=ctx.generator)
            x, y = to_float(ctx.clean.images[idx], ctx.device), ctx.clean.labels[idx].to(ctx.device)
            delta.requires_grad_(True)
            (grad,) = torch.autograd.grad(self.inner_objective(model, x, y, delta), delta)
            delta = project(delta.detach() + cfg.uap_step_ratio * cfg.eps * ascent_direction(grad, cfg.norm),
                            cfg.eps, cfg.norm)
        return delta.detach()
