"""Threshold attacks on a score: ROC AUC, the best balanced accuracy, TPR at a fixed FPR.

Shared by every membership-inference attack: each reduces to "members score higher", and the
threshold is chosen on calibration scores, then applied to disjoint evaluation scores. The
bootstrap (resampling the evaluation members and non-members) gives the threshold-free metrics'
standard errors, and, with the same resamples for two models, the standard error of their difference.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

Resamples = tuple[torch.Tensor, torch.Tensor]  # bootstrap positions of the members, of the non-members


def roc_auc(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """Probability that a random positive scores above a random negative (ties count half)."""
    scores = torch.cat([positive, negative]).double()
    ranks = torch.empty_like(scores)
    order = scores.argsort()
    ranks[order] = torch.arange(1, len(scores) + 1, dtype=torch.double)
    # average ranks over ties
    unique, inverse = torch.unique(scores, return_inverse=True)
    sums = torch.zeros(len(unique), dtype=torch.double).index_add_(0, inverse, ranks)
    counts = torch.zeros(len(unique), dtype=torch.double).index_add_(0, inverse, torch.ones_like(ranks))
    ranks = (sums / counts)[inverse]
    n_pos, n_neg = len(positive), len(negative)
    return ((ranks[:n_pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)).item()


def best_threshold(positive: torch.Tensor, negative: torch.Tensor) -> float:
    """The threshold t maximising balanced accuracy of the rule ``score >= t`` (calibration)."""
    candidates = torch.cat([positive, negative]).unique()
    tpr = (positive.view(1, -1) >= candidates.view(-1, 1)).float().mean(1)
    tnr = (negative.view(1, -1) < candidates.view(-1, 1)).float().mean(1)
    return candidates[((tpr + tnr) / 2).argmax()].item()


def balanced_accuracy(positive: torch.Tensor, negative: torch.Tensor, threshold: float) -> float:
    return (((positive >= threshold).float().mean() + (negative < threshold).float().mean()) / 2).item()


def tpr_at_fpr(positive: torch.Tensor, negative: torch.Tensor, fpr: float) -> float:
    """TPR at the threshold where at most ``fpr`` of the negatives score above it.

    A point of the evaluation ROC curve, threshold-free like the AUC (the low-FPR view of Carlini
    et al. 2022), not a threshold an attacker could deploy."""
    # "higher" keeps the threshold on a negative's score, so at most ``fpr`` of them lie above it
    threshold = torch.quantile(negative.double(), 1 - fpr, interpolation="higher").item()
    return (positive.double() > threshold).float().mean().item()


def membership_report(members: torch.Tensor, non_members: torch.Tensor, calibration_members: torch.Tensor,
                      calibration_non_members: torch.Tensor, fprs: Sequence[float]) -> dict[str, float]:
    """AUC, balanced accuracy and TPR at each of ``fprs`` of the scores of evaluation members and
    non-members; the balanced-accuracy threshold is picked on the calibration scores only."""
    threshold = best_threshold(calibration_members, calibration_non_members)
    return {"auc": roc_auc(members, non_members), "bal_acc": balanced_accuracy(members, non_members, threshold),
            **{f"tpr_at_fpr{fpr:g}": tpr_at_fpr(members, non_members, fpr) for fpr in fprs}}


def bootstrap_draws(members: int, non_members: int, draws: int, generator: torch.Generator) -> Resamples:
    """``draws`` resamples (with replacement) of the members and, independently, of the non-members,
    as counts: how often each sample is drawn, (draws, members) and (draws, non_members). Drawn once
    and applied to every model of an attack, a difference between two models is resampled in pairs
    (the same samples each time)."""
    def counts(n: int) -> torch.Tensor:
        picks = torch.randint(n, (draws, n), generator=generator)
        return torch.zeros(draws, n, dtype=torch.double).scatter_add_(1, picks, torch.ones(draws, n, dtype=torch.double))

    return counts(members), counts(non_members)


def bootstrap_metrics(members: torch.Tensor, non_members: torch.Tensor, resamples: Resamples,
                      fprs: Sequence[float]) -> dict[str, torch.Tensor]:
    """``{"auc": (draws,), "tpr_at_fpr<f>": (draws,)}``: :func:`roc_auc` and :func:`tpr_at_fpr` of
    every resample, computed from the counts at once (each draw is a weighted sum over sample pairs)."""
    weights_m, weights_n = resamples
    positive, negative = members.double(), non_members.double()
    wins = ((positive.view(-1, 1) > negative.view(1, -1)).double()
            + 0.5 * (positive.view(-1, 1) == negative.view(1, -1)).double())
    out = {"auc": torch.einsum("bi,ij,bj->b", weights_m, wins, weights_n) / (len(positive) * len(negative))}
    order = negative.argsort()
    ranked, cumulative = negative[order], weights_n[:, order].cumsum(1)
    for fpr in fprs:
        position = math.ceil((1 - fpr) * (len(negative) - 1))  # torch.quantile's "higher" element
        threshold = ranked[(cumulative <= position).sum(1)]
        above = (positive.view(1, -1) > threshold.view(-1, 1)).double()
        out[f"tpr_at_fpr{fpr:g}"] = (weights_m * above).sum(1) / len(positive)
    return out
