"""D3: removes the planted backdoor, and keeps its two invariants at every step."""

from __future__ import annotations

import pytest
import torch

from backdoorlab.defenses import build_defense
from backdoorlab.defenses.d3 import warm_start
from backdoorlab.defenses.weight_anchor import WeightAnchor
from backdoorlab.errors import ConfigError
from defense_checks import assert_removed, defend

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

FAST = {"epochs": 15, "batch_size": 128, "lam": 20.0, "lr": 0.05}


def test_d3_removes_the_backdoor(planted):
    outcome, after = defend(planted, "d3", **FAST)
    assert_removed(planted, after, max_ca_drop=0.2)
    # The classifier moved far from its backdoored value, at the same norm.
    assert outcome.notes["relative_distance"] > 0.5
    assert torch.linalg.vector_norm(outcome.model.classifier.weight).item() == pytest.approx(
        torch.linalg.vector_norm(planted.state["classifier.weight"]).item(), rel=1e-4)


def test_every_step_keeps_the_norm_and_the_distance_grows(planted):
    defense = build_defense("d3", {"method": "d3", **FAST, "epochs": 12, "warm_start": "keep"}).defense
    ratios, distances = [], []

    def observe(anchor: WeightAnchor) -> None:
        ratios.extend(anchor.norm_ratios())
        with torch.no_grad():
            distances.append(anchor.distance().item())

    anchor = defense.detoxify(planted.model(), planted.context(), on_step=observe)
    assert len(distances) == 12 * (len(planted.clean) // 128)
    assert ratios == pytest.approx([1.0] * len(ratios), rel=1e-4)
    # From the initial weights (warm start "keep": distance 0) the distance term climbs.
    assert distances[0] > 0
    assert distances[-1] > 2 * distances[0]
    assert distances[-1] == pytest.approx(anchor.distance().item())


@pytest.mark.parametrize("method,expected", [("keep", 0.0), ("zero", 1.0), ("negate", 2.0)])
def test_warm_starts_land_where_they_say(planted, method, expected):
    model = planted.model()
    anchor = WeightAnchor([model.classifier.weight])
    warm_start(anchor, method, torch.Generator().manual_seed(0))
    with torch.no_grad():
        relative = anchor.distance().item() / anchor.norms[0].item()
    assert relative == pytest.approx(expected, abs=1e-6)


def test_random_warm_start_is_rescaled_to_the_initial_norm(planted):
    anchor = WeightAnchor([planted.model().classifier.weight])
    warm_start(anchor, "random", torch.Generator().manual_seed(0))
    assert anchor.norm_ratios() == pytest.approx([1.0], rel=1e-5)
    assert anchor.distance().item() > 0.5 * anchor.norms[0].item()


def test_unknown_layer_is_a_config_error(planted):
    defense = build_defense("d3", {"method": "d3", **FAST, "layers": ["no_such_layer"]}).defense
    with pytest.raises(ConfigError, match="no_such_layer"):
        defense.apply(planted.model(), planted.context())
