"""Metric-based membership inference (Yeom et al. 2018; Song & Mittal 2021): no training.

A model fits its training samples better than unseen ones, so a score computed from its output
on a sample (negative loss, confidence in the true class, negative entropy, negative modified
entropy) is higher for members. The threshold is chosen on calibration members/non-members and
applied to disjoint evaluation members/non-members; AUC needs no threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.sequela.base import SEQUELA, Measurement, MembershipScores, SequelaContext
from backdoorlab.sequela.membership import MembershipAttack
from backdoorlab.settings import require
from backdoorlab.training.loop import predict_logits

Metric = Literal["loss", "confidence", "entropy", "modified_entropy"]
_EPS = 1e-30


def membership_scores(logits: torch.Tensor, labels: torch.Tensor, metric: str) -> torch.Tensor:
    """Per-sample scores, oriented so that larger means "more likely a member"."""
    log_p = F.log_softmax(logits.double(), dim=1)
    p = log_p.exp()
    if metric == "loss":
        return -F.nll_loss(log_p, labels, reduction="none")
    if metric == "confidence":
        return p.gather(1, labels.view(-1, 1)).squeeze(1)
    if metric == "entropy":
        return (p * log_p).sum(1)
    # Song & Mittal's modified entropy uses the label: low for confident correct predictions.
    p_true = p.gather(1, labels.view(-1, 1)).squeeze(1)
    log_1mp = torch.log((1 - p).clamp_min(_EPS))
    true_term = -(1 - p_true) * log_p.gather(1, labels.view(-1, 1)).squeeze(1)
    others = -(p * log_1mp)
    others = others.sum(1) - others.gather(1, labels.view(-1, 1)).squeeze(1)
    return -(true_term + others)


@SEQUELA.register("mia_metric")
class MetricMIA(MembershipAttack):
    """Also reports the model's accuracy on the evaluation members and non-members, and their gap:
    the generalisation gap these scores feed on, beside the numbers it explains."""

    @dataclass(frozen=True)
    class Config:
        metrics: list[Metric] = ("loss", "confidence", "entropy", "modified_entropy")  # type: ignore[assignment]
        fpr: float = 0.01

        def check(self, key: str) -> None:
            require(len(self.metrics) > 0, f"{key}.metrics", "must name at least one metric")
            require(0 < self.fpr < 1, f"{key}.fpr", f"must be in (0, 1), got {self.fpr}")

    def measure(self, model: nn.Module, ctx: SequelaContext) -> Measurement:
        sets = (ctx.members, ctx.non_members, ctx.calibration_members, ctx.calibration_non_members)
        logits = [predict_logits(model, data.images, ctx.device) for data in sets]
        scores = {metric: MembershipScores(*(membership_scores(out, data.labels, metric)
                                             for out, data in zip(logits, sets)))
                  for metric in self.config.metrics}
        train_acc, test_acc = ((out.argmax(1) == data.labels).double().mean().item()
                               for out, data in zip(logits[:2], sets[:2]))
        return self.measurement(scores, train_acc=train_acc, test_acc=test_acc, gap=train_acc - test_acc)

    def headline(self, metric: str) -> bool:
        # The confidence in the true class is exp(-loss): same ranking, so the same AUC as loss.
        return metric == "gap" or (metric.endswith(".auc") and not metric.startswith("confidence."))
