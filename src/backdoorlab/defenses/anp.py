"""Adversarial Neuron Pruning (Wu & Wang, NeurIPS 2021): prune the neurons that make the model
sensitive to adversarial weight perturbations.

Backdoored neurons are the ones whose small multiplicative perturbation collapses the model's
clean behaviour (towards the target class). Every BatchNorm2d channel ("neuron") gets a mask
m in [0, 1] on its scale and perturbations within ``eps`` on its scale and shift:
``y = (m + delta) * gamma * x_hat + (1 + xi) * beta``. Each step first moves (delta, xi) one
gradient step up the clean loss (from a random start in the eps-box), then moves the masks down
``alpha * L(masked) + (1 - alpha) * L(masked and perturbed)`` and clips them to [0, 1]. Neurons
whose mask ends below ``threshold`` are pruned: their BN scale is set to 0 (the mask acts on the
scale only, as in the paper), so the returned model keeps its architecture.

The threshold is a fixed parameter, never chosen by looking at triggered data. The masks are
optimised with the model in eval mode (BN running statistics), so no model state changes except
the pruned scales.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength
from backdoorlab.defenses.pruning import ZeroedChannels
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import to_float
from backdoorlab.training.optim import SGD


class NeuronGate:
    """A forward hook on one affine BatchNorm2d that applies the mask and, if on, the noise."""

    def __init__(self, norm: nn.BatchNorm2d) -> None:
        channels, device = norm.num_features, norm.weight.device
        self.norm = norm
        self.mask = torch.ones(channels, device=device, requires_grad=True)
        self.scale_noise = torch.zeros(channels, device=device, requires_grad=True)
        self.shift_noise = torch.zeros(channels, device=device, requires_grad=True)
        self.perturbed = False
        self.handle = norm.register_forward_hook(self)

    def __call__(self, module: nn.Module, inputs: tuple[torch.Tensor], output: torch.Tensor) -> torch.Tensor:
        shift = self.norm.bias.view(1, -1, 1, 1)
        scale, shift_factor = self.mask, torch.ones_like(self.mask)
        if self.perturbed:
            scale, shift_factor = scale + self.scale_noise, shift_factor + self.shift_noise
        return (output - shift) * scale.view(1, -1, 1, 1) + shift * shift_factor.view(1, -1, 1, 1)


def perturbed_loss(model: nn.Module, gates: list[NeuronGate], x: torch.Tensor, y: torch.Tensor,
                   perturbed: bool) -> torch.Tensor:
    for gate in gates:
        gate.perturbed = perturbed
    return F.cross_entropy(model(x), y)


@DEFENSES.register("anp")
class AdversarialNeuronPruning(Defense):
    # A higher threshold prunes more neurons.
    strength = Strength("threshold", (0.05, 0.1, 0.2, 0.3, 0.5))

    @dataclass(frozen=True)
    class Config:
        eps: float = 0.4  # bound of the multiplicative neuron perturbation
        alpha: float = 0.2  # weight of the unperturbed loss in the mask objective
        iterations: int = 2000
        batch_size: int = 128
        mask_lr: float = 0.2
        mask_momentum: float = 0.9
        threshold: float = 0.2  # prune neurons whose mask ends below this (fixed, not tuned on ASR)

        def check(self, key: str) -> None:
            check_non_negative(self, key, "eps", "mask_momentum")
            check_positive(self, key, "iterations", "batch_size", "mask_lr")
            for name in ("alpha", "threshold"):
                value = getattr(self, name)
                require(0 <= value <= 1, f"{key}.{name}", f"must be in [0, 1], got {value!r}")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d) and m.affine]
        gates = [NeuronGate(norm) for norm in norms]
        try:
            self.optimise_masks(model, gates, ctx)
        finally:
            for gate in gates:
                gate.handle.remove()
        zeroed = ZeroedChannels()
        per_layer = []
        for gate in gates:
            pruned = torch.nonzero(gate.mask.detach() < cfg.threshold).flatten()
            zeroed.add(gate.norm.weight, pruned)
            per_layer.append(len(pruned))
        zeroed.apply()
        total = sum(gate.norm.num_features for gate in gates)
        return DefenseOutcome(model, {"pruned": sum(per_layer), "pruned_fraction": sum(per_layer) / max(total, 1),
                                      "pruned_per_layer": per_layer})

    def optimise_masks(self, model: nn.Module, gates: list[NeuronGate], ctx: DefenseContext) -> None:
        cfg = self.config
        model.eval()
        masks = [gate.mask for gate in gates]
        noises = [t for gate in gates for t in (gate.scale_noise, gate.shift_noise)]
        optimizer = SGD(masks, lr=cfg.mask_lr, momentum=cfg.mask_momentum)
        for _ in range(cfg.iterations):
            idx = torch.randint(0, len(ctx.clean), (min(cfg.batch_size, len(ctx.clean)),), generator=ctx.generator)
            x, y = to_float(ctx.clean.images[idx], ctx.device), ctx.clean.labels[idx].to(ctx.device)
            if cfg.eps > 0:  # one ascent step on the noise, from a random point of the eps-box
                with torch.no_grad():
                    for noise in noises:
                        noise.copy_((torch.rand(noise.shape, generator=ctx.generator) * 2 - 1) * cfg.eps)
                grads = torch.autograd.grad(perturbed_loss(model, gates, x, y, True), noises)
                with torch.no_grad():
                    for noise, grad in zip(noises, grads):
                        noise.add_(cfg.eps * grad).clamp_(-cfg.eps, cfg.eps)
            loss = (cfg.alpha * perturbed_loss(model, gates, x, y, False)
                    + (1 - cfg.alpha) * perturbed_loss(model, gates, x, y, True))
            optimizer.zero_grad(set_to_none=True)
            grads = torch.autograd.grad(loss, masks)
            for mask, grad in zip(masks, grads):
                mask.grad = grad
            optimizer.step()
            with torch.no_grad():
                for mask in masks:
                    mask.clamp_(0, 1)
