"""FST: a re-initialised head pushed away from the original one; backdoor removed."""

from __future__ import annotations

import pytest
import torch

from backdoorlab.defenses import build_defense
from backdoorlab.errors import ConfigError
from defense_checks import assert_removed, defend

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


def test_fst_removes_the_backdoor(planted):
    outcome, after = defend(planted, "fst", epochs=10, lr=0.02, alpha=0.02)
    assert_removed(planted, after, max_ca_drop=0.25)
    # The new head keeps the original's norm (the projection after every step).
    assert torch.linalg.vector_norm(outcome.model.classifier.weight).item() == pytest.approx(
        torch.linalg.vector_norm(planted.state["classifier.weight"]).item(), rel=1e-4)


def test_the_penalty_turns_the_head_away_from_the_original(planted):
    cosines = [defend(planted, "fst", epochs=2, lr=0.02, alpha=alpha)[0].notes["classifier_cosine"]
               for alpha in (0.0, 2.0)]
    assert cosines[1] < cosines[0] - 0.1, cosines
    assert cosines[1] < 0


def test_fst_needs_a_linear_classifier(planted):
    defense = build_defense("fst", {"method": "fst", "classifier": "features.0"}).defense
    with pytest.raises(ConfigError, match="not a linear layer"):
        defense.apply(planted.model(), planted.context())
