"""The field's backdoor metrics: CA, ASR, RA and DER (definitions as in BackdoorBench)."""

from __future__ import annotations

import torch
from torch import nn

from backdoorlab.attacks.base import TriggeredSet
from backdoorlab.data.base import ImageSet
from backdoorlab.training.loop import predict_logits


def backdoor_metrics(model: nn.Module, clean_test: ImageSet, triggered_test: TriggeredSet,
                     device: torch.device) -> dict[str, float]:
    """CA on clean test images; ASR and RA on triggered images whose label the trigger changes.

    ASR: fraction of triggered images classified as their attack label (the target, or in
         all-to-all mode the next class of each image's true label).
    RA:  fraction of triggered images classified as their true label (robust accuracy).
    """
    clean_pred = predict_logits(model, clean_test.images, device).argmax(1)
    triggered_pred = predict_logits(model, triggered_test.images, device).argmax(1)
    return {
        "ca": (clean_pred == clean_test.labels).float().mean().item(),
        "asr": (triggered_pred == triggered_test.attack_labels).float().mean().item(),
        "ra": (triggered_pred == triggered_test.labels).float().mean().item(),
    }


def defense_effectiveness_rating(before: dict[str, float], after: dict[str, float]) -> float:
    """DER = (max(0, dASR) - max(0, dCA) + 1) / 2, where d is before - after (in [0, 1])."""
    asr_drop = max(0.0, before["asr"] - after["asr"])
    ca_drop = max(0.0, before["ca"] - after["ca"])
    return (asr_drop - ca_drop + 1.0) / 2.0


def retained_accuracy(before: float, after: float, num_classes: int) -> float:
    """Share of the accuracy above chance that a model kept: (after - chance) / (before - chance).

    1.0 = no loss, 0.0 = down to guessing. Above-chance accuracy, not raw accuracy, so that the
    same floor means the same thing for 10 classes and for 43. A model that was at or below
    chance before has nothing to lose (1.0)."""
    chance = 1.0 / num_classes
    if before <= chance:
        return 1.0
    return (after - chance) / (before - chance)
