"""Transfer: the downstream model reuses the source weights under a new head, and ``last_block``
fine-tuning moves only the last block and the head.

The source is a width-8 CNN trained for one epoch on Fashion-MNIST classes 5-9; the downstream
task is classes 0-4, as the issue suggests for the embedded data set. About 2 s.
"""

from __future__ import annotations

import copy

import pytest
import torch

from backdoorlab.models import ModelSpec, build_model
from backdoorlab.paradigms.transfer import class_subset, downstream_model, last_block
from backdoorlab.training.loop import fit, sgd
from backdoorlab.training.schedules import constant
from conftest import CPU, SMALL_CNN, fashion_pool

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

SOURCE_CLASSES, DOWNSTREAM_CLASSES = (5, 6, 7, 8, 9), (0, 1, 2, 3, 4)


def train(model: torch.nn.Module, data, seed: int) -> None:
    fit(model, data, epochs=1, batch_size=64, optimizer=sgd(model, 0.05, 0.9, 5e-4), schedule=constant(0.05),
        generator=torch.Generator().manual_seed(seed), augment=None, device=CPU, on_epoch=lambda epoch, loss: None)


@pytest.fixture(scope="module")
def tasks():
    pool = fashion_pool().subset(torch.arange(3000))
    source_task, downstream_task = class_subset(pool, SOURCE_CLASSES), class_subset(pool, DOWNSTREAM_CLASSES)
    torch.manual_seed(0)
    source = build_model(ModelSpec("small_cnn", {"width": 8}, 1, 28, 5, (0.286,), (0.353,)))
    train(source, source_task, seed=1)
    return source, downstream_task


def test_class_subset_keeps_only_the_classes_and_relabels_them():
    pool = fashion_pool().subset(torch.arange(1000))
    subset = class_subset(pool, (7, 2))
    assert len(subset) == int(((pool.labels == 7) | (pool.labels == 2)).sum())
    assert torch.equal(subset.labels, (pool.labels[(pool.labels == 7) | (pool.labels == 2)] == 2).long())


def test_last_block_follows_each_registry_layout():
    assert last_block(build_model(SMALL_CNN)) == ["features.2", "classifier"]
    resnet = build_model(ModelSpec("preact_resnet18", {"width": 2}, 3, 32, 10, (0.5,) * 3, (0.25,) * 3))
    assert last_block(resnet) == ["layers.7", "bn", "classifier"]


@pytest.mark.parametrize("fine_tune", ["all", "last_block"])
def test_downstream_model_reuses_the_source_and_freezes_what_it_should(tasks, fine_tune):
    source, downstream_task = tasks
    source_state = copy.deepcopy(source.state_dict())
    model = downstream_model(source, 5, fine_tune, torch.Generator().manual_seed(2))
    start = copy.deepcopy(model.state_dict())
    for key, value in start.items():
        if not key.startswith("classifier."):
            assert torch.equal(value, source_state[key]), key  # every layer but the head is reused
    assert model(downstream_task.images[:4].float() / 255).shape == (4, 5)

    train(model, downstream_task, seed=3)
    after = dict(model.named_parameters())
    moved = {name for name, value in after.items() if not torch.equal(value, start[name])}
    trainable = {"features.2.0.weight", "features.2.1.weight", "features.2.1.bias", "classifier.weight",
                 "classifier.bias"}
    if fine_tune == "last_block":
        assert moved == trainable
    else:
        assert moved == set(after)
    assert all(torch.equal(v, source_state[k]) for k, v in source.state_dict().items())  # source untouched
