import torch

from backdoorlab.defenses.pruning import last_conv
from defense_checks import assert_removed, defend


def test_fine_pruning_removes_backdoor_and_keeps_pruned_channels_zero(planted):
    outcome, metrics = defend(planted, "fp", max_acc_drop=0.1, epochs=5, lr=0.01)
    assert outcome.notes["pruned"] > 0
    target = last_conv(outcome.model)
    zero = (target.norm.weight == 0) & (target.norm.bias == 0)
    assert int(zero.sum()) >= outcome.notes["pruned"]
    assert torch.all(target.conv.weight[zero] == 0)
    assert_removed(planted, metrics)


def test_fine_pruning_respects_max_ratio(planted):
    outcome, _ = defend(planted, "fp", max_acc_drop=1.0, max_ratio=0.25, epochs=0)
    channels = last_conv(outcome.model).conv.out_channels
    assert outcome.notes["pruned"] == int(0.25 * channels)
