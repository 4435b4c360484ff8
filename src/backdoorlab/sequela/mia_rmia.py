"""Offline RMIA (Zarifzadeh et al. 2024): membership inference by a likelihood ratio against
reference models and population samples.

A candidate x is likely a member when the target model raises its probability of x's true label
more, relative to what models in general give x, than it does for typical population samples z:

    LR(x, z) = [p(x | target) / Pr(x)] / [p(z | target) / Pr(z)],   score(x) = share of z with LR > gamma.

Pr(z) is the mean over the reference models (each trained on a seeded half of the attacker's data,
so z is in about half of them). The candidates were never in any reference model ("offline"), so
their mean p_out(x) underestimates Pr(x); RMIA's offline correction is
Pr(x) = ((1 + a) p_out(x) + (1 - a)) / 2. Its ``a`` is chosen, as the paper does, by simulating the
attack on the reference models themselves: each in turn plays the target (whose members the
attacker knows), the others its references, and the ``a`` with the best mean AUC is kept. Nothing of
the target's members or of the test set enters that choice.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.sequela.base import SEQUELA, Measurement, MembershipScores, ReferenceModels, SequelaContext
from backdoorlab.sequela.membership import MembershipAttack, require_reference
from backdoorlab.sequela.scores import roc_auc
from backdoorlab.settings import check_positive, require
from backdoorlab.training.loop import predict_logits

A_GRID = torch.linspace(0, 1, 11, dtype=torch.double)


def true_class_probability(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Softmax probability of each sample's label, in double precision; ``logits`` may carry leading
    model dimensions (..., samples, classes)."""
    p = F.softmax(logits.double(), dim=-1)
    return p.gather(-1, labels.expand(*p.shape[:-1]).unsqueeze(-1)).squeeze(-1)


def dominance(ratio_x: torch.Tensor, ratio_z: torch.Tensor, gamma: float) -> torch.Tensor:
    """For each candidate, the share of population samples z with LR(x, z) > gamma."""
    return (ratio_x.view(-1, 1) > gamma * ratio_z.view(1, -1)).double().mean(1)


def offline_prior(p_out: torch.Tensor, a: float) -> torch.Tensor:
    """RMIA's offline estimate of Pr(x) from the mean probability of models that never saw x."""
    return ((1 + a) * p_out + (1 - a)) / 2


@SEQUELA.register("mia_rmia")
class RMIA(MembershipAttack):
    @dataclass(frozen=True)
    class Config:
        gamma: float = 1.0  # x "beats" z when LR(x, z) > gamma
        offline_a: float | None = None  # None: chosen on the reference models (module docstring)
        population: int = 1000  # population samples z, a seeded subset of the attacker's data
        fprs: list[float] = (0.001, 0.01)  # type: ignore[assignment]

        def check(self, key: str) -> None:
            check_positive(self, key, "gamma", "population")
            require(self.offline_a is None or 0 <= self.offline_a <= 1, f"{key}.offline_a",
                    f"must be in [0, 1] or null, got {self.offline_a}")
            require(len(self.fprs) > 0 and all(0 < f < 1 for f in self.fprs), f"{key}.fprs",
                    "must be a non-empty list of rates in (0, 1)")

    def fprs(self) -> list[float]:
        return list(self.config.fprs)

    def choose_a(self, reference: ReferenceModels, z: torch.Tensor) -> float:
        """The offline ``a`` with the best mean AUC when each reference model plays the target."""
        require(len(reference) >= 2, f"{self.key}.offline_a",
                "choosing a needs at least 2 shadow models (sequela.shadow.models); or set it")
        probs = true_class_probability(reference.logits, reference.population.labels)  # (models, population)
        auc = torch.zeros(len(A_GRID), dtype=torch.double)
        for j in range(len(reference)):
            others = torch.arange(len(reference)) != j
            out = ~reference.trained_on[others]
            seen_by_none = out.sum(0)
            p_out = (probs[others] * out).sum(0) / seen_by_none.clamp_min(1)
            usable = seen_by_none > 0  # some other model never saw it: an offline candidate
            ratio_z = probs[j, z] / probs[others][:, z].mean(0)
            members, non_members = reference.trained_on[j] & usable, ~reference.trained_on[j] & usable
            for i, a in enumerate(A_GRID.tolist()):
                score = dominance(probs[j] / offline_prior(p_out, a), ratio_z, self.config.gamma)
                auc[i] += roc_auc(score[members], score[non_members])
        return A_GRID[auc.argmax()].item()

    def chosen_a(self, reference: ReferenceModels, z: torch.Tensor) -> float:
        return self.config.offline_a if self.config.offline_a is not None else self.choose_a(reference, z)

    def measure(self, model: nn.Module, ctx: SequelaContext) -> Measurement:
        reference = require_reference(ctx, self.key)
        population = reference.population
        z = torch.randperm(len(population), generator=ctx.generator)[:self.config.population]
        a = self.chosen_a(reference, z)
        labels_z = population.labels[z]
        target_z = true_class_probability(predict_logits(model, population.images[z], ctx.device), labels_z)
        ratio_z = target_z / true_class_probability(reference.logits[:, z], labels_z).mean(0)

        def score(data: ImageSet) -> torch.Tensor:
            p_x = true_class_probability(predict_logits(model, data.images, ctx.device), data.labels)
            p_out = torch.stack([true_class_probability(predict_logits(m, data.images, ctx.device), data.labels)
                                 for m in reference.models]).mean(0)
            return dominance(p_x / offline_prior(p_out, a), ratio_z, self.config.gamma)

        scores = {"": MembershipScores(score(ctx.members), score(ctx.non_members), score(ctx.calibration_members),
                                       score(ctx.calibration_non_members))}
        return self.measurement(scores, offline_a=a)

    def headline(self, metric: str) -> bool:
        return metric == "auc" or metric.startswith("tpr_at_fpr")
