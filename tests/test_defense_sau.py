import pytest
import torch

from backdoorlab.defenses.sau import shared_adversarial_loss
from defense_checks import assert_removed, defend

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


def test_shared_loss_is_large_only_when_both_models_agree_on_a_wrong_class():
    y = torch.tensor([0])
    agree_wrong = shared_adversarial_loss(torch.tensor([[0.0, 9.0, 0.0]]), torch.tensor([[0.0, 9.0, 0.0]]), y)
    disagree = shared_adversarial_loss(torch.tensor([[0.0, 9.0, 0.0]]), torch.tensor([[0.0, 0.0, 9.0]]), y)
    correct = shared_adversarial_loss(torch.tensor([[9.0, 0.0, 0.0]]), torch.tensor([[9.0, 0.0, 0.0]]), y)
    assert agree_wrong > 5 * disagree and agree_wrong > 5 * correct


def test_sau_removes_backdoor(planted):
    _, metrics = defend(planted, "sau", optimizer="sgd", lr=0.01, weight_decay=5e-4, epochs=10, batch_size=128)
    assert_removed(planted, metrics, max_ca_drop=0.12)
