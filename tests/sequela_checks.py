"""Helpers the sequela tests share: a SequelaContext around the planted backdoor's data, and a
tiny model trained from scratch (overfitted on purpose when given few samples and many epochs).

Imported by the ``test_sequela_*.py`` files (pytest puts this folder on the import path).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from backdoorlab.data import ImageSet
from backdoorlab.sequela import SEQUELA, SequelaAttack, SequelaContext
from backdoorlab.sequela.base import ReferenceModels
from backdoorlab.settings import parse_section
from backdoorlab.training.loop import fit, sgd
from backdoorlab.training.schedules import constant
from backdoorlab.training.recipe import init_model

CPU = torch.device("cpu")


def sequela_attack(method: str, **params: Any) -> SequelaAttack:
    """A sequela instance built the way params.yaml's entries are."""
    cls = SEQUELA.get(method, "test")
    return cls(parse_section(cls.Config, params, f"sequela.attacks.{method}"), f"sequela.attacks.{method}")


def context(planted: Any, members: ImageSet, non_members: ImageSet, calibration_members: ImageSet,
            calibration_non_members: ImageSet, reference: ReferenceModels | None = None,
            seed: int = 0) -> SequelaContext:
    return SequelaContext(spec=planted.spec, device=CPU, generator=torch.Generator().manual_seed(seed),
                          members=members, non_members=non_members, calibration_members=calibration_members,
                          calibration_non_members=calibration_non_members, clean_test=planted.test,
                          attack=planted.attack, defense_data=planted.clean, triggered_test=planted.triggered,
                          reference=reference, label="test")


def train_tiny(planted: Any, data: ImageSet, epochs: int, seed: int) -> nn.Module:
    """The planted architecture trained from scratch on ``data`` without augmentation (constant LR,
    small batches): with a few hundred samples and many epochs it memorises them."""
    model = init_model(planted.spec, seed, CPU)
    fit(model, data, epochs=epochs, batch_size=32, optimizer=sgd(model, 0.05, 0.9, 0.0), schedule=constant(0.05),
        generator=torch.Generator().manual_seed(seed), augment=None, device=CPU,
        on_epoch=lambda epoch, loss: None)
    return model.eval()
