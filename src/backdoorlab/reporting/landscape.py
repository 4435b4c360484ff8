"""The D3 paper's loss-landscape diagnostic: clean and poisoned loss along a straight line.

Along ``theta(t) = theta_0 + t (theta_defended - theta_0)`` (t = 0: the backdoored model, t = 1:
the defended one, t > 1: further along the same direction), a defense that only reached the edge
of the backdoor's basin shows a poisoned loss that is still low at t = 1 (vanilla fine-tuning:
low clean *and* poisoned loss near theta_0), while one that left it (D3) shows it high. Every
floating-point tensor of the state is interpolated, BatchNorm running statistics included, so
each point is a model that can be evaluated as it is.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.attacks.base import TriggeredSet
from backdoorlab.data.base import ImageSet
from backdoorlab.settings import check_positive, require
from backdoorlab.training.loop import predict_logits

State = Mapping[str, torch.Tensor]


@dataclass(frozen=True)
class LandscapeSettings:
    """params.yaml's ``landscape`` section."""

    defenses: list[str] = field(default_factory=lambda: ["ft", "sft", "d3"])
    points: int = 21  # evenly spaced values of t in [0, t_max]
    t_max: float = 2.0
    # Test images per loss (the first of each set): every point is a full evaluation, and a
    # mean loss over 500 images is already smooth, at a fraction of the cost of the whole set.
    samples: int = 500

    def check(self, key: str) -> None:
        require(self.points >= 2, f"{key}.points", f"must be >= 2, got {self.points}")
        check_positive(self, key, "t_max", "samples")
        require(len(self.defenses) > 0, f"{key}.defenses", "name at least one defense")

    def ts(self) -> list[float]:
        return torch.linspace(0.0, self.t_max, self.points).tolist()


def first(data: ImageSet, count: int) -> ImageSet:
    """The first ``count`` images (all if there are fewer): the sets are shuffled when prepared."""
    return data.subset(torch.arange(min(count, len(data))))


def interpolate(start: State, end: State, t: float) -> dict[str, torch.Tensor]:
    """``start + t (end - start)`` for floating-point tensors; others (BN's batch counters) are
    taken from ``end``. Beyond t = 1 a BatchNorm running variance can extrapolate below zero (and
    make every output NaN), so variances are clipped at 0 (BN adds its own eps)."""
    state = {}
    for name, value in end.items():
        if not value.is_floating_point():
            state[name] = value.clone()
            continue
        state[name] = start[name] + t * (value - start[name])
        if name.endswith("running_var"):
            state[name].clamp_(min=0.0)
    return state


def mean_loss(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, device: torch.device) -> float:
    """Mean cross-entropy in eval mode."""
    return F.cross_entropy(predict_logits(model, images, device), labels).item()


def loss_path(start: nn.Module, end: nn.Module, clean: ImageSet, triggered: TriggeredSet,
              ts: list[float], device: torch.device) -> list[dict[str, float]]:
    """Clean loss (true labels) and poisoned loss (triggered images, attack labels) at each t."""
    probe = copy.deepcopy(start).to(device)
    start_state = {k: v.detach().to(device) for k, v in start.state_dict().items()}
    end_state = {k: v.detach().to(device) for k, v in end.state_dict().items()}
    rows = []
    for t in ts:
        probe.load_state_dict(interpolate(start_state, end_state, t))
        rows.append({"t": t, "clean_loss": mean_loss(probe, clean.images, clean.labels, device),
                     "poisoned_loss": mean_loss(probe, triggered.images, triggered.attack_labels, device)})
    return rows
