"""Checks every defense test makes: architecture kept, backdoored state untouched, metrics after.

Imported by the ``test_<defense>.py`` files (pytest puts this folder on the import path).
"""

from __future__ import annotations

import copy
from typing import Any

import torch

from backdoorlab.defenses import DefenseOutcome, build_defense


def defend(planted: Any, method: str, seed: int = 0, **params: Any) -> tuple[DefenseOutcome, dict[str, float]]:
    """Apply a small-budget defense to a fresh copy of the planted model; return outcome, metrics.
    ``seed`` redraws the defense's own randomness (batch order, augmentation, its initialisations)."""
    reference = copy.deepcopy(planted.state)
    spec = build_defense(method, {"method": method, **params})
    model = planted.model()
    torch.manual_seed(seed)
    outcome = spec.defense.apply(model, planted.context(seed))
    after = outcome.model.state_dict()
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in reference.items()}
    assert all(torch.equal(planted.state[k], reference[k]) for k in reference), "backdoored state modified"
    return outcome, planted.metrics(outcome.model)


def assert_removed(planted: Any, metrics: dict[str, float], max_ca_drop: float = 0.1) -> None:
    """ASR well below the undefended model's, clean accuracy still reasonable."""
    assert metrics["asr"] < 0.5 * planted.before["asr"], (planted.before, metrics)
    assert metrics["ca"] > planted.before["ca"] - max_ca_drop, (planted.before, metrics)
