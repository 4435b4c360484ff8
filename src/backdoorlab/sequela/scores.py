"""Threshold attacks on a score: ROC AUC, the best balanced accuracy, TPR at a fixed FPR.

Shared by every membership-inference attack: each reduces to "members score higher", and the
threshold is chosen on calibration scores, then applied to disjoint evaluation scores.
"""

from __future__ import annotations

import torch


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
                      calibration_non_members: torch.Tensor, fpr: float) -> dict[str, float]:
    """AUC, balanced accuracy and TPR at ``fpr`` of the scores of evaluation members/non-members;
    the balanced-accuracy threshold is picked on the calibration scores only."""
    threshold = best_threshold(calibration_members, calibration_non_members)
    return {
        "auc": roc_auc(members, non_members),
        "bal_acc": balanced_accuracy(members, non_members, threshold),
        f"tpr_at_fpr{fpr:g}": tpr_at_fpr(members, non_members, fpr),
    }
