"""Distance-Driven Detoxification (D3; Wei, Liu, Zha, ICCV 2025).

Vanilla fine-tuning stays near the backdoored weights, in a region where the poisoned loss is low
too. D3 instead *maximises* the distance of selected layers from their backdoored weights, subject
to the clean loss staying below ``eps``, in the practical form of the authors' code: per batch

    loss = lam * mean_i relu(CE_i - eps) - sum_l ||W_l - W_l0||_p     (divided by lam + 1 if lam > 1)

over all parameters (SGD with momentum, cosine LR), where only samples whose loss exceeds ``eps``
pull back toward the clean task. After every step each selected weight is rescaled to its initial
norm, so the distance grows by turning the weights, not by inflating them. The selected layers get
a warm start away from their initial value first, since the distance's gradient at zero distance
gives no direction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.defenses.weight_anchor import WeightAnchor, uniform_like
from backdoorlab.models.layers import weighted_layers
from backdoorlab.settings import check_non_negative, check_positive, require

WarmStart = Literal["random", "keep", "zero", "negate", "noise"]
StepObserver = Callable[[WeightAnchor], None]


@torch.no_grad()
def warm_start(anchor: WeightAnchor, method: WarmStart, generator: torch.Generator) -> None:
    """Move the selected weights away from their initial values before training.

    ``random``: uniform in [-0.5, 0.5], rescaled to the initial norm (the authors' default);
    ``keep``: no change; ``zero``: all zeros (halfway to the antipode); ``negate``: the antipode
    ``-W0``, the farthest point at the same norm; ``noise``: add Gaussian noise with the weight's
    own standard deviation.
    """
    for weight in anchor.weights:
        if method == "random":
            weight.copy_(uniform_like(weight, 0.5, generator))
        elif method == "zero":
            weight.zero_()
        elif method == "negate":
            weight.neg_()
        elif method == "noise":
            noise = torch.randn(weight.shape, generator=generator).to(weight)
            weight.add_(noise * weight.std())
    if method == "random":
        anchor.project()


def set_batchnorm_eval(model: nn.Module) -> None:
    """Freeze BatchNorm statistics (use and keep the running ones) while the rest trains."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.eval()


@DEFENSES.register("d3")
class DistanceDrivenDetoxification(Defense):
    # A smaller weight on the clean-loss constraint lets the distance grow more. The weakest value
    # also keeps the classifier: the re-draw alone costs a small model about 5 validation points
    # whatever lam is (lam 20 to 1000 measured alike), so without it no value would be a near no-op.
    strength = Strength("lam", (1000.0, 20.0, 10.0, 5.0, 2.0, 1.0, 0.5), floor={"warm_start": "keep"})

    @dataclass(frozen=True)
    class Config:
        lam: float = 0.5  # weight of the clean-loss constraint against the distance
        eps: float = 0.1  # per-sample clean loss below which a sample exerts no pull
        p: float = 2.0  # the distance's (and the projection's) norm
        layers: list[str] = field(default_factory=lambda: ["classifier"])
        warm_start: WarmStart = "random"
        batchnorm_train: bool = True  # BN in train mode (the authors' default: lower ASR)
        epochs: int = 100
        batch_size: int = 256
        lr: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 0.0  # the authors' optimizer has none
        augment: bool = True

        def check(self, key: str) -> None:
            check_non_negative(self, key, "lam", "eps", "epochs", "momentum", "weight_decay")
            check_positive(self, key, "batch_size", "lr")
            require(self.p >= 1, f"{key}.p", f"must be >= 1 (a norm), got {self.p}")
            require(len(self.layers) > 0, f"{key}.layers", "name at least one layer")

    def detoxify(self, model: nn.Module, ctx: DefenseContext,
                 on_step: StepObserver | None = None) -> WeightAnchor:
        """Run D3 on ``model`` in place; ``on_step`` sees the anchor after every projected step.

        Returns the anchor (initial weights and norms of the selected layers) for reporting.
        """
        cfg = self.config
        layers = weighted_layers(model, cfg.layers, "d3.layers")
        anchor = WeightAnchor([layer.weight for layer in layers], p=cfg.p)
        warm_start(anchor, cfg.warm_start, ctx.generator)

        def loss_fn(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            if not cfg.batchnorm_train:
                set_batchnorm_eval(net)
            excess = F.relu(F.cross_entropy(net(x), y, reduction="none") - cfg.eps).mean()
            loss = cfg.lam * excess - anchor.distance()
            return loss / (cfg.lam + 1) if cfg.lam > 1 else loss  # the authors' scale control

        def after_step() -> None:
            anchor.project()
            if on_step is not None:
                on_step(anchor)

        finetune(model, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                 momentum=cfg.momentum, weight_decay=cfg.weight_decay, augment=cfg.augment,
                 loss_fn=loss_fn, after_step=after_step)
        return anchor

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        anchor = self.detoxify(model, ctx)
        with torch.no_grad():
            distance = anchor.distance().item()
        # relative_distance: 0 = unchanged, 2 = every selected weight at its antipode -W0.
        return DefenseOutcome(model, notes={
            "distance": distance,
            "relative_distance": distance / torch.stack(anchor.norms).sum().item(),
        })
