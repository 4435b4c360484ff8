"""SIG, LF and WaNet actually plant a backdoor at tiny size: a width-8 CNN trained on the poisoned
set sends far more triggered images to the target than the same CNN trained on clean data.

(BadNets and Blended are checked by the session fixture in conftest.py; SSBA and Input-aware by
their own test modules.) 3,000 training images, 6 epochs, no augmentation: a few seconds per attack.
The bars are loose on purpose, well below what the default run reaches on 11,000 images (see the
README's attack table): a tiny run plants these weaker triggers only partly.
"""

from __future__ import annotations

import pytest
import torch

from backdoorlab.attacks import AttackerResources, build_attack
from backdoorlab.training.loop import predict_logits
from conftest import CPU, SMALL_CNN, pool_splits, train_small_cnn

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

ATTACKS = {
    "sig": {"method": "sig", "target": 0, "poison_rate": 0.08, "delta": 80},  # params.yaml's values
    "lf": {"method": "lf", "target": 0, "poison_rate": 0.1, "steps": 60, "surrogate_epochs": 2},
    "wanet": {"method": "wanet", "target": 0, "poison_rate": 0.1, "strength": 1.0},  # params.yaml's
}


@pytest.fixture(scope="module")
def splits():
    attacker, train, test = pool_splits(1000, 3000, 600)
    return attacker, train, test, train_small_cnn(train)


def target_rate(model: torch.nn.Module, images: torch.Tensor) -> float:
    return (predict_logits(model, images, CPU).argmax(1) == 0).float().mean().item()


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_the_backdoor_is_planted(splits, name):
    attacker, train, test, clean_model = splits
    attack = build_attack(name, ATTACKS[name], (1, 28, 28), 10)
    attack.prepare(AttackerResources(attacker, SMALL_CNN, CPU, torch.Generator().manual_seed(1)))
    poisoned = attack.poison(train, torch.Generator().manual_seed(3))
    hook = attack.training_hook(torch.Generator().manual_seed(4), CPU)
    assert (hook is not None) == (name == "wanet")  # WaNet's noise mode takes part in training
    backdoored = train_small_cnn(poisoned.train, hook=hook)
    triggered = attack.triggered_test(test).images
    asr, clean_model_rate = target_rate(backdoored, triggered), target_rate(clean_model, triggered)
    accuracy = (predict_logits(backdoored, test.images, CPU).argmax(1) == test.labels).float().mean().item()
    assert asr > clean_model_rate + 0.3, (asr, clean_model_rate)
    assert accuracy > 0.7, accuracy
