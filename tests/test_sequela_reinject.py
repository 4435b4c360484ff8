"""Backdoor re-injection: a model trained without poison learns the trigger from enough poisoned
samples mixed into the defender's clean subset, more readily with more of them."""

from __future__ import annotations

import copy

import pytest
import torch
from sequela_checks import context, sequela_attack, train_tiny

from backdoorlab.errors import ConfigError

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


@pytest.fixture(scope="module")
def clean_model(planted):
    """The planted architecture trained for 3 epochs on 2,000 unpoisoned training samples."""
    unpoisoned = torch.ones(len(planted.train), dtype=torch.bool)
    unpoisoned[planted.poison_indices] = False
    return train_tiny(planted, planted.train.subset(torch.nonzero(unpoisoned).flatten()[:2000]), 3, seed=5)


def test_reinjection_plants_a_backdoor_in_a_clean_model(planted, clean_model):
    before = planted.metrics(clean_model)
    assert before["asr"] < 0.2 and before["ca"] > 0.7, before  # no backdoor to start with
    reference = copy.deepcopy(clean_model.state_dict())
    a = planted.test.subset(torch.arange(10))
    results = sequela_attack("reinject", poisons=[5, 150], epochs=6, lr=0.05).run(clean_model,
                                                                                  context(planted, a, a, a, a))
    assert results["asr@150"] > 0.8, results
    assert results["asr@150"] > results["asr@5"] + 0.3, results
    assert all(torch.equal(v, reference[k]) for k, v in clean_model.state_dict().items()), "model modified"


def test_reinjection_asks_for_more_poisons_than_available(planted, clean_model):
    a = planted.test.subset(torch.arange(10))
    with pytest.raises(ConfigError, match="sequela.attacks.reinject.poisons"):
        sequela_attack("reinject", poisons=[10_000]).run(clean_model, context(planted, a, a, a, a))
