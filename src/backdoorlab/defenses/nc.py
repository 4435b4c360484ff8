"""Neural Cleanse (Wang et al., IEEE S&P 2019): reverse-engineer a trigger per class, flag
outliers, unlearn.

For every class k, a mask m (H x W, through a sigmoid) and a pattern p (C x H x W, through a
sigmoid) are optimised so that stamping ``(1 - m) * x + m * p`` sends clean images to k with the
smallest mask: ``CE(f(x'), k) + lambda_k * |m|_1``. A backdoor target needs a far smaller mask than
the other classes, so the classes whose mask norm is an outlier on the small side (anomaly index by
the median absolute deviation, > 2 in the paper) are flagged. The model then unlearns the flagged
triggers: fine-tuning on clean data where a fraction of the images carry a reversed trigger but keep
their true label.

All classes are optimised at once, as one batch of ``classes x batch_size`` stamped images, which
is what keeps the cost of ten reverse-engineering runs within a few seconds at this scale. lambda
follows the paper's adaptive schedule, per class: every ``patience`` steps it is multiplied by
``cost_multiplier`` if the trigger reached ``success_threshold`` on the recent batches and divided
by ``cost_multiplier ** 1.5`` otherwise; the smallest mask that reached the threshold is kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.per_class import extreme_classes
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import to_float
from backdoorlab.training.optim import Adam

MAD_CONSISTENCY = 1.4826  # makes the MAD a consistent estimator of a normal's standard deviation


def anomaly_indices(norms: torch.Tensor) -> torch.Tensor:
    """|x - median| / (1.4826 * median(|x - median|)) for each value (0 where it equals the median)."""
    median = norms.quantile(0.5)  # the mean of the two middle values for an even count
    deviation = (norms - median).abs()
    mad = MAD_CONSISTENCY * deviation.quantile(0.5)
    return deviation / mad.clamp_min(1e-12)


def flag_small_outliers(norms: torch.Tensor, threshold: float) -> list[int]:
    """Classes whose mask norm is below the median with an anomaly index above ``threshold``."""
    index = anomaly_indices(norms)
    return [int(k) for k in torch.nonzero((norms < norms.quantile(0.5)) & (index > threshold)).flatten()]


@dataclass(frozen=True)
class Triggers:
    """One reversed trigger per class: masks (K, 1, H, W) and patterns (K, C, H, W) in [0, 1]."""

    masks: torch.Tensor
    patterns: torch.Tensor

    def norms(self) -> torch.Tensor:
        return self.masks.flatten(1).sum(1)

    def stamp(self, x: torch.Tensor, which: torch.Tensor) -> torch.Tensor:
        """Stamp trigger ``which[i]`` onto image ``x[i]``."""
        mask, pattern = self.masks[which], self.patterns[which]
        return (1 - mask) * x + mask * pattern


def reverse_engineer(model: nn.Module, ctx: DefenseContext, num_classes: int,
                     cfg: NeuralCleanse.Config) -> Triggers:
    """Optimise a minimal trigger for every class at once (model frozen, in eval mode)."""
    model.eval()
    _, channels, height, width = ctx.clean.images.shape
    device = ctx.device
    mask_logit = torch.zeros(num_classes, 1, height, width, device=device, requires_grad=True)
    pattern_logit = (torch.rand(num_classes, channels, height, width, generator=ctx.generator) * 2 - 1
                     ).to(device).requires_grad_(True)
    optimizer = Adam([mask_logit, pattern_logit], lr=cfg.lr, betas=(0.5, 0.9))
    targets = torch.arange(num_classes, device=device).repeat_interleave(cfg.batch_size)
    cost = torch.full((num_classes,), cfg.init_cost, device=device)
    best_norm = torch.full((num_classes,), float("inf"), device=device)
    best_mask = torch.sigmoid(mask_logit).detach().clone()
    best_pattern = torch.sigmoid(pattern_logit).detach().clone()
    window = torch.zeros(num_classes, device=device)
    for step in range(1, cfg.steps + 1):
        idx = torch.randint(0, len(ctx.clean), (cfg.batch_size,), generator=ctx.generator)
        x = to_float(ctx.clean.images[idx], device)
        mask, pattern = torch.sigmoid(mask_logit), torch.sigmoid(pattern_logit)
        stamped = (1 - mask.unsqueeze(1)) * x.unsqueeze(0) + (mask * pattern).unsqueeze(1)
        logits = model(stamped.flatten(0, 1))
        ce = F.cross_entropy(logits, targets, reduction="none").view(num_classes, -1).mean(1)
        norm = mask.flatten(1).sum(1)
        loss = (ce + cost * norm).sum()
        optimizer.zero_grad(set_to_none=True)
        mask_logit.grad, pattern_logit.grad = torch.autograd.grad(loss, [mask_logit, pattern_logit])
        optimizer.step()
        with torch.no_grad():
            success = (logits.argmax(1) == targets).float().view(num_classes, -1).mean(1)
            window += success
            better = (success >= cfg.success_threshold) & (norm < best_norm)
            best_norm = torch.where(better, norm, best_norm)
            best_mask[better], best_pattern[better] = mask[better], pattern[better]
            if step % cfg.patience == 0:
                reached = window / cfg.patience >= cfg.success_threshold
                cost = torch.where(reached, cost * cfg.cost_multiplier, cost / cfg.cost_multiplier ** 1.5)
                window.zero_()
    with torch.no_grad():  # a class that never reached the threshold keeps its final trigger
        never = torch.isinf(best_norm)
        best_mask[never] = torch.sigmoid(mask_logit)[never]
        best_pattern[never] = torch.sigmoid(pattern_logit)[never]
    return Triggers(best_mask, best_pattern)


@DEFENSES.register("nc")
class NeuralCleanse(Defense):
    # More stamped images unlearn the reversed trigger harder.
    strength = Strength("unlearn_fraction", (0.05, 0.1, 0.2, 0.4))

    @dataclass(frozen=True)
    class Config:
        steps: int = 300  # reverse-engineering steps (all classes at once)
        batch_size: int = 32  # clean images per class per step
        lr: float = 0.1  # Adam, as the paper
        init_cost: float = 1e-3
        cost_multiplier: float = 1.5
        patience: int = 10
        success_threshold: float = 0.99
        anomaly_threshold: float = 2.0
        unlearn_fraction: float = 0.2  # share of clean images stamped with a reversed trigger
        epochs: int = 10
        unlearn_batch_size: int = 128
        unlearn_lr: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 5e-4
        augment: bool = True

        def check(self, key: str) -> None:
            check_positive(self, key, "steps", "batch_size", "lr", "patience", "unlearn_batch_size",
                           "unlearn_lr", "anomaly_threshold")
            check_non_negative(self, key, "init_cost", "epochs", "momentum", "weight_decay")
            require(self.cost_multiplier > 1, f"{key}.cost_multiplier", "must be > 1")
            for name in ("success_threshold", "unlearn_fraction"):
                value = getattr(self, name)
                require(0 <= value <= 1, f"{key}.{name}", f"must be in [0, 1], got {value!r}")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        triggers = reverse_engineer(model, ctx, ctx.spec.num_classes, cfg)
        norms = triggers.norms().cpu()
        flagged = flag_small_outliers(norms, cfg.anomaly_threshold)
        notes = {"flagged": flagged, "smallest_masks": extreme_classes(norms.tolist(), smallest=True, digits=2),
                 "largest_anomaly_index": extreme_classes(anomaly_indices(norms).tolist(), smallest=False)}
        if flagged:
            flagged_ids = torch.tensor(flagged)

            def unlearning_loss(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                stamped = torch.rand(len(x), generator=ctx.generator) < cfg.unlearn_fraction
                which = flagged_ids[torch.randint(0, len(flagged), (len(x),), generator=ctx.generator)]
                chosen = stamped.to(x.device).view(-1, 1, 1, 1)
                x = torch.where(chosen, triggers.stamp(x, which.to(x.device)), x)
                return F.cross_entropy(net(x), y)  # true labels: the trigger must mean nothing

            finetune(model, ctx, epochs=cfg.epochs, batch_size=cfg.unlearn_batch_size, lr=cfg.unlearn_lr,
                     momentum=cfg.momentum, weight_decay=cfg.weight_decay, augment=cfg.augment,
                     loss_fn=unlearning_loss)
        return DefenseOutcome(model, notes)
