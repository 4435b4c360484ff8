"""Activation Clustering (Chen et al., 2018): poison forms its own cluster within its (target) class.

Per class, the backdoored model's penultimate activations of the class's training samples are
centred, reduced to ``dims`` components and split by 2-means. Poisoned samples reach the target
class through the trigger, not through the class's own features, so they gather in a separate,
smaller cluster; a class whose smaller cluster holds less than ``size_threshold`` of it is flagged,
and that cluster's samples are removed. Follows the paper's relative-size criterion with its 10
dimensions; simplified: PCA (an SVD) instead of ICA, and no silhouette criterion (the relative
size alone decides, the paper's simplest variant).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backdoorlab.cleansing.base import (CLEANSERS, CleansingContext, Detection, DetectThenRetrain, class_positions,
                                       merged, representations)
from backdoorlab.per_class import extreme_classes
from backdoorlab.settings import check_positive, require


def lloyd(points: torch.Tensor, centres: torch.Tensor, iterations: int) -> tuple[torch.Tensor, float]:
    """Lloyd's iterations from ``centres``: the cluster ids and their inertia (summed squared distance)."""
    ids = torch.cdist(points, centres).argmin(1)
    for _ in range(iterations):
        centres = torch.stack([points[ids == k].mean(0) if (ids == k).any() else centres[k] for k in (0, 1)])
        new_ids = torch.cdist(points, centres).argmin(1)
        if torch.equal(new_ids, ids):
            break
        ids = new_ids
    inertia = sum(((points[ids == k] - points[ids == k].mean(0)) ** 2).sum().item() for k in (0, 1) if (ids == k).any())
    return ids, inertia


def two_means(points: torch.Tensor, generator: torch.Generator, restarts: int = 10,
              iterations: int = 50) -> torch.Tensor:
    """Cluster ids (0/1) of ``points`` by 2-means: ``restarts`` k-means++ initialisations, each run
    to convergence, and the partition of least inertia kept (scikit-learn's ``n_init=10``, which the
    paper's clustering used). One initialisation can settle in a split that cuts the clean majority
    in two instead of separating the poison, and which one it settles in changes with float kernels."""
    best: tuple[torch.Tensor, float] | None = None
    for _ in range(restarts):
        first = points[torch.randint(len(points), (1,), generator=generator)]
        distance = torch.cdist(points, first).squeeze(1) ** 2
        second = points[torch.multinomial(distance + 1e-12, 1, generator=generator)]
        ids, inertia = lloyd(points, torch.cat([first, second]), iterations)
        if best is None or inertia < best[1]:
            best = (ids, inertia)
    assert best is not None
    return best[0]


@CLEANSERS.register("ac")
class ActivationClustering(DetectThenRetrain):
    @dataclass(frozen=True)
    class Config:
        dims: int = 10  # components kept before clustering (the paper's ICA dimension)
        size_threshold: float = 0.35  # a smaller cluster below this share of its class is poison
        restarts: int = 10  # k-means initialisations, the least-inertia one kept (scikit-learn's n_init)

        def check(self, key: str) -> None:
            check_positive(self, key, "dims", "restarts")
            require(0 < self.size_threshold < 0.5, f"{key}.size_threshold",
                    f"must be in (0, 0.5), got {self.size_threshold}")

    def detect(self, trained: nn.Module, ctx: CleansingContext) -> Detection:
        features = representations(trained, ctx.train.images, ctx.device)
        flagged, shares = [], [1.0] * ctx.spec.num_classes  # a class of one image has no smaller cluster
        for label, members in class_positions(ctx.train, ctx.spec.num_classes):
            if len(members) < 2:
                continue
            centred = features[members] - features[members].mean(0)
            _, _, right = torch.linalg.svd(centred, full_matrices=False)
            ids = two_means(centred @ right[:self.config.dims].T, ctx.generator, self.config.restarts)
            smaller = int((ids == 1).sum() < (ids == 0).sum())
            share = (ids == smaller).float().mean().item()
            shares[label] = share
            if share < self.config.size_threshold:
                flagged.append(members[ids == smaller])
        return Detection(merged(flagged), {"flagged_classes": len(flagged),
                                           "smallest_cluster_shares": extreme_classes(shares, smallest=True, digits=4)})
