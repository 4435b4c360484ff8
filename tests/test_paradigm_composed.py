"""The composed model (encoder + downstream head) and the victim's head training on a frozen encoder.

The encoder is a freshly initialised width-8 CNN: even random convolutional features separate
Fashion-MNIST far above chance with a trained head, and what is tested here is the head training,
not the encoder's quality. 2,000 training images, 20 epochs on precomputed features: under 1 s.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch
from torch import nn

from backdoorlab.models import build_model
from backdoorlab.paradigms.composed import HeadConfig, build_encoder, compose, embedding_dim, encoder_of, train_head
from backdoorlab.training.loop import accuracy
from conftest import CPU, SMALL_CNN, fashion_pool, pool_splits

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


@pytest.fixture(scope="module")
def splits():
    return tuple(pool_splits(2000, 1000))


@pytest.mark.parametrize("kind", ["linear", "mlp"])
def test_head_training_leaves_the_encoder_frozen_and_learns_the_task(splits, kind):
    train, test = splits
    torch.manual_seed(0)
    encoder = build_encoder(SMALL_CNN)
    before = copy.deepcopy(encoder.state_dict())  # weights and BatchNorm statistics
    config = HeadConfig(kind=kind, hidden=(64,), epochs=20, lr=1e-3)
    model = train_head(encoder, train, 10, config, generator=torch.Generator().manual_seed(1), device=CPU,
                       on_epoch=lambda epoch, loss: None)
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items())
    assert all(torch.equal(encoder.state_dict()[k], v) for k, v in before.items())
    assert accuracy(model, test, CPU) > 0.6  # chance: 0.1
    assert isinstance(model.classifier, nn.Linear if kind == "linear" else nn.Sequential)


def test_linear_composed_model_is_the_registry_architecture():
    torch.manual_seed(0)
    source = build_model(SMALL_CNN)
    encoder = encoder_of(source)
    assert isinstance(source.classifier, nn.Linear)  # the source keeps its classifier
    assert embedding_dim(encoder, (1, 28, 28)) == source.classifier.in_features
    head = nn.Linear(source.classifier.in_features, 5)
    model = compose(encoder, head)
    assert isinstance(encoder.classifier, nn.Identity)  # composing does not modify the encoder
    # Same module names and state-dict keys: load_model, NAD, FST and D3 apply unchanged.
    build_model(replace(SMALL_CNN, num_classes=5)).load_state_dict(model.state_dict())
    assert model(torch.rand(4, 1, 28, 28)).shape == (4, 5)


def test_an_mlp_head_has_the_hidden_widths():
    torch.manual_seed(0)
    encoder = build_encoder(SMALL_CNN)
    train = fashion_pool().subset(torch.arange(256))
    config = HeadConfig(kind="mlp", hidden=(32, 16), epochs=1)
    model = train_head(encoder, train, 10, config, generator=torch.Generator().manual_seed(1), device=CPU,
                       on_epoch=lambda epoch, loss: None)
    widths = [layer.out_features for layer in model.classifier if isinstance(layer, nn.Linear)]
    assert widths == [32, 16, 10]
