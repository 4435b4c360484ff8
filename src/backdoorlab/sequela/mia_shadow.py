"""Shadow-model membership inference (Shokri et al. 2017, in ML-Doctor's black-box form).

The attacker trains shadow models of the target's architecture, with the target's recipe, on its
own data (``splits.shadow``), so it knows which samples each shadow model saw. A small MLP learns
"member or not" from the shadow models' posteriors and is then applied to the target's posteriors.
Its input is the top-k posteriors sorted in decreasing order (label-free, so one classifier serves
every class), as log-probabilities: near-certain predictions, where members and non-members
differ, are squeezed together on the probability scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.sequela.base import SEQUELA, Measurement, MembershipScores, SequelaContext
from backdoorlab.sequela.membership import MembershipAttack, require_reference
from backdoorlab.settings import check_positive, require
from backdoorlab.training.loop import predict_logits
from backdoorlab.training.optim import Adam


def posterior_features(logits: torch.Tensor, top_k: int) -> torch.Tensor:
    """The ``top_k`` largest log-posteriors of each sample, sorted in decreasing order (all of them
    when the task has fewer classes: a two-class task gives two)."""
    return F.log_softmax(logits, dim=1).topk(min(top_k, logits.shape[1]), dim=1).values


@SEQUELA.register("mia_shadow")
class ShadowMIA(MembershipAttack):
    @dataclass(frozen=True)
    class Config:
        top_k: int = 3
        hidden: int = 32  # width of the attack MLP's two hidden layers
        steps: int = 200  # full-batch Adam steps on the shadow models' posteriors
        lr: float = 0.01
        fpr: float = 0.01

        def check(self, key: str) -> None:
            check_positive(self, key, "top_k", "hidden", "steps", "lr")
            require(0 < self.fpr < 1, f"{key}.fpr", f"must be in (0, 1), got {self.fpr}")

    def fit_attack_model(self, ctx: SequelaContext) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
        """The attack MLP trained on every shadow model's members (1) and non-members (0), with the
        feature mean and std it standardises its inputs by."""
        cfg = self.config
        reference = require_reference(ctx, self.key)
        features, targets = [], []
        for i in range(len(reference)):
            for logits, is_member in ((reference.members_of(i), 1.0), (reference.non_members_of(i), 0.0)):
                features.append(posterior_features(logits, cfg.top_k))
                targets.append(torch.full((len(logits),), is_member))
        x, y = torch.cat(features), torch.cat(targets)
        mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
        x = (x - mean) / std
        attack = nn.Sequential(nn.Linear(x.shape[1], cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, cfg.hidden),
                               nn.ReLU(), nn.Linear(cfg.hidden, 1))
        optimizer = Adam(attack.parameters(), lr=cfg.lr)
        for _ in range(cfg.steps):
            loss = F.binary_cross_entropy_with_logits(attack(x).squeeze(1), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        return attack, mean, std

    def measure(self, model: nn.Module, ctx: SequelaContext) -> Measurement:
        attack, mean, std = self.fit_attack_model(ctx)
        with torch.no_grad():
            scores = [attack((posterior_features(predict_logits(model, data.images, ctx.device), self.config.top_k)
                              - mean) / std).squeeze(1).double()
                      for data in (ctx.members, ctx.non_members, ctx.calibration_members, ctx.calibration_non_members)]
        return self.measurement({"": MembershipScores(*scores)})

    def headline(self, metric: str) -> bool:
        return metric == "auc"
