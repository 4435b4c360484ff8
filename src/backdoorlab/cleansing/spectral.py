"""Spectral Signatures (Tran, Li & Madry, 2018): poison leaves a trace along the top singular vector.

Per class, the backdoored model's penultimate representations of the class's training samples are
centred; each sample's score is its squared projection on the top right singular vector of that
matrix. Poisoned samples share one feature the clean ones lack, which dominates that direction, so
the defender removes the ``removal_factor x assumed_poison_rate`` highest-scoring share of every
class (the paper's 1.5 x epsilon, with epsilon an upper bound the defender assumes, not the true
rate) and retrains. Follows the paper; every class is cleansed (the defender does not know the
target).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from backdoorlab.cleansing.base import (CLEANSERS, CleansingContext, Detection, DetectThenRetrain, class_positions,
                                       merged, representations)
from backdoorlab.settings import check_positive, require


def spectral_scores(features: torch.Tensor) -> torch.Tensor:
    """Squared projection of each centred row on the matrix's top right singular vector."""
    centred = features - features.mean(0)
    _, _, right = torch.linalg.svd(centred, full_matrices=False)
    return (centred @ right[0]) ** 2


@CLEANSERS.register("spectral")
class SpectralSignatures(DetectThenRetrain):
    @dataclass(frozen=True)
    class Config:
        assumed_poison_rate: float = 0.1  # epsilon: the defender's upper bound on the poison share
        removal_factor: float = 1.5

        def check(self, key: str) -> None:
            check_positive(self, key, "removal_factor")
            require(0 < self.assumed_poison_rate < 1, f"{key}.assumed_poison_rate",
                    f"must be in (0, 1), got {self.assumed_poison_rate}")

    def detect(self, trained: nn.Module, ctx: CleansingContext) -> Detection:
        features = representations(trained, ctx.train.images, ctx.device)
        share = min(1.0, self.config.removal_factor * self.config.assumed_poison_rate)
        flagged = []
        for _, members in class_positions(ctx.train, ctx.spec.num_classes):
            count = math.floor(share * len(members))
            if count == 0:
                continue
            flagged.append(members[spectral_scores(features[members]).topk(count).indices])
        removed = merged(flagged)
        return Detection(removed, {"removed_share": round(len(removed) / len(ctx.train), 4)})
