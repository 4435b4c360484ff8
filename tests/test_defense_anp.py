import pytest
import torch
from torch import nn

from defense_checks import defend

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


def test_anp_zeroes_the_bn_scale_of_exactly_the_pruned_neurons(planted):
    outcome, metrics = defend(planted, "anp", iterations=50, batch_size=64, threshold=0.5)
    zeroed = sum(int((m.weight == 0).sum()) for m in outcome.model.modules() if isinstance(m, nn.BatchNorm2d))
    assert outcome.notes["pruned"] > 0 and zeroed == outcome.notes["pruned"]
    assert sum(outcome.notes["pruned_per_layer"]) == outcome.notes["pruned"]
    assert metrics["ca"] > planted.before["ca"] - 0.1


def test_anp_with_threshold_zero_prunes_nothing_and_changes_no_state(planted):
    outcome, _ = defend(planted, "anp", iterations=3, threshold=0.0)
    assert outcome.notes["pruned"] == 0
    state = outcome.model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in planted.state.items())
