"""Every registered architecture at a tiny width: the shapes the pipeline relies on (any input
size it serves, a linear ``classifier`` last, NAD's default attention layers, Fine-Pruning's last
conv, the transfer paradigm's last block), safetensors round trips, and that it actually learns."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from torch import nn

from backdoorlab.defenses.pruning import last_conv
from backdoorlab.models import MODELS, ModelSpec, build_model, load_model, save_model
from backdoorlab.models.layers import module_by_name
from backdoorlab.paradigms.transfer import last_block
from backdoorlab.training.loop import accuracy, fit, sgd
from backdoorlab.training.schedules import constant

from conftest import separable_task

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

ARCHS = sorted(MODELS.names())
CPU = torch.device("cpu")


def spec(arch: str, channels: int = 3, side: int = 32, classes: int = 10) -> ModelSpec:
    return ModelSpec(arch, {"arch": arch, "width": 4}, channels, side, classes, (0.5,) * channels, (0.25,) * channels)


def test_the_registry_holds_the_fields_models():
    assert {"small_cnn", "preact_resnet18", "resnet18", "vgg16_bn"} <= set(ARCHS)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("channels, side", [(1, 28), (3, 32), (3, 64)])
def test_forward_shapes_and_the_layers_defenses_name(arch, channels, side):
    torch.manual_seed(0)
    model = build_model(spec(arch, channels, side, classes=7))
    assert model(torch.rand(2, channels, side, side)).shape == (2, 7)
    assert isinstance(model.classifier, nn.Linear) and list(model.modules())[-1] is model.classifier
    for name in model.attention_layers:  # NAD's default: each an activation map (N, C, H, W)
        module_by_name(model, name, "nad.layers")
    assert last_conv(model).conv.out_channels > 0 and last_block(model)[-1] == "classifier"


@pytest.mark.parametrize("arch", ARCHS)
def test_weights_round_trip_through_safetensors(arch, tmp_path):
    torch.manual_seed(0)
    model = build_model(spec(arch)).eval()
    save_model(model, tmp_path / "m.safetensors")
    again = load_model(spec(arch), tmp_path / "m.safetensors").eval()
    x = torch.rand(3, 3, 32, 32)
    assert torch.equal(model(x), again(x))


@pytest.mark.parametrize("arch", ARCHS)
def test_a_model_keeps_its_declared_layout_which_changes_kernels_not_results(arch, tmp_path):
    """Built and loaded models hold their 4-D weights in the class's layout (the saved file is
    layout-free), and a channels-first copy computes the same function up to float rounding."""
    torch.manual_seed(0)
    declared = MODELS.get(arch, "model.arch").memory_format
    model = build_model(spec(arch)).eval()
    save_model(model, tmp_path / "m.safetensors")
    loaded = load_model(spec(arch), tmp_path / "m.safetensors").eval()
    for weights in (model, loaded):
        conv = last_conv(weights).conv.weight
        assert conv.is_contiguous(memory_format=declared)
    channels_first = copy.deepcopy(model).to(memory_format=torch.contiguous_format)
    x = torch.rand(3, 3, 32, 32)
    torch.testing.assert_close(model(x), channels_first(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("arch", ["resnet18", "vgg16_bn"])
def test_new_models_learn_a_separable_task(arch):
    """Bright images are class 1, dark ones class 0: a few epochs must fit it, for most
    initialisations. Width 8, LR 0.02 and 10 epochs fitted it (100%) for every architecture, three
    initialisations each, on all three kernel paths of an Intel AMX CPU (2026-12-05). On an AMD AVX2
    CPU with the portable kernels VGG-16 reached 97-100% alone but 69% when run after ResNet-18 in
    one process (2026-12-06): its training loss was 0.0002 both times, so it fits the task, and
    what the rounding moves is how well its BN running statistics carry that to eval mode. Hence a
    majority of three initialisations (width 4, LR 0.05 and 3 epochs left ResNet-18 and VGG-16 at
    chance for one initialisation in three)."""
    data = separable_task()
    blueprint = spec(arch, classes=2)
    fitted = []
    for init in range(3):
        torch.manual_seed(init)
        model = build_model(dataclasses.replace(blueprint, params={**blueprint.params, "width": 8}))
        fit(model, data, epochs=10, batch_size=32, optimizer=sgd(model, 0.02, 0.9, 5e-4), schedule=constant(0.02),
            generator=torch.Generator().manual_seed(1), augment=None, device=CPU)
        fitted.append(accuracy(model, data, CPU))
    assert sum(acc > 0.95 for acc in fitted) >= 2, fitted
