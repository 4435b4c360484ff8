"""Input-aware dynamic backdoor: mask pre-training, the per-batch hook, a real backdoor learnt
through the shared loop, cross-trigger non-reusability, state round trips and config checks.

One small model is trained once for the module (~2000 Fashion-MNIST images, 6 epochs). To learn
in seconds the test raises the per-batch rates (rho_b 0.3, rho_c 0.2) and the mask density (0.05)
above the paper's defaults; everything else is the attack as the pipeline runs it.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from conftest import CPU, SMALL_CNN as SPEC, pool_splits

from backdoorlab.attacks import AttackerResources, build_attack
from backdoorlab.attacks.input_aware import InputAware, blend
from backdoorlab.data import ImageSet
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.io import load_tensors, save_tensors
from backdoorlab.metrics import backdoor_metrics
from backdoorlab.models.base import build_model
from backdoorlab.training.augment import AugmentConfig
from backdoorlab.training.loop import fit, predict_logits, sgd, steps_per_epoch
from backdoorlab.training.schedules import cosine

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

SECTION = {"method": "input_aware", "target": 0, "poison_rate": 0.3, "cross_ratio": 0.2,
           "mask_density": 0.05, "mask_batch_size": 64, "mask_epochs": 8}


def make(shape=(1, 28, 28), **overrides) -> InputAware:
    attack = build_attack("ia", {**SECTION, **overrides}, shape, 10)
    assert isinstance(attack, InputAware)
    return attack


@dataclass
class Trained:
    attack: InputAware
    model: torch.nn.Module
    test: ImageSet
    prepared: dict[str, torch.Tensor]  # the trigger state right after prepare()


@pytest.fixture(scope="module")
def trained() -> Trained:
    train, test, shadow = pool_splits(2000, 1000, 1000)
    attack = make()
    attack.prepare(AttackerResources(shadow, SPEC, CPU, torch.Generator().manual_seed(1)))
    prepared = {k: v.clone() for k, v in attack.state_tensors().items()}
    poisoned = attack.poison(train, torch.Generator().manual_seed(2))
    torch.manual_seed(0)
    model = build_model(SPEC)
    epochs, batch = 6, 64
    fit(model, poisoned.train, epochs=epochs, batch_size=batch, optimizer=sgd(model, 0.05, 0.9, 5e-4),
        schedule=cosine(0.05, epochs * steps_per_epoch(len(train), batch)),
        generator=torch.Generator().manual_seed(3), augment=AugmentConfig(2, True), device=CPU,
        on_epoch=lambda epoch, loss: None,
        batch_hook=attack.training_hook(torch.Generator().manual_seed(4), CPU))
    return Trained(attack, model, test, prepared)


def test_prepared_masks_have_the_asked_density_and_differ_between_images(trained):
    fresh = make()
    fresh.load_state(trained.prepared)
    masks = fresh.masks(trained.test.images[:400])
    assert masks.shape == (400, 1, 28, 28)
    density = masks.flatten(1).mean(1)
    # the norm loss is a hinge at mask_density: at or a little below it, never far above
    assert 0.5 * 0.05 < density.mean() < 1.1 * 0.05, density.mean()
    assert ((masks < 0.05) | (masks > 0.95)).float().mean() > 0.9  # near-binary
    # the diversity loss: two different images get masks that differ in most of their pixels
    on = masks > 0.5
    overlap = (on & on.roll(1, 0)).flatten(1).sum(1).float() / on.flatten(1).sum(1).clamp(min=1)
    assert overlap.mean() < 0.5, overlap.mean()


def test_training_plants_an_input_specific_backdoor(trained):
    attack, model, test = trained.attack, trained.model, trained.test
    triggered = attack.triggered_test(test)
    metrics = backdoor_metrics(model, test, triggered, CPU)
    assert metrics["asr"] > 0.7 and metrics["ca"] > 0.68, metrics
    # cross-trigger: another image's pattern and mask do not switch the label to the target
    keep = attack.candidates(test.labels)
    images = test.images[keep]
    cross = attack.stamp(images, images.roll(1, 0))
    pred = predict_logits(model, cross, CPU).argmax(1)
    cross_to_target = (pred == triggered.attack_labels).float().mean().item()
    assert cross_to_target < 0.45 and cross_to_target < metrics["asr"] - 0.35, (cross_to_target, metrics)
    # the mask generator stayed frozen during training; the pattern generator learnt
    after = attack.state_tensors()
    assert all(torch.equal(after[k], v) for k, v in trained.prepared.items() if k.startswith("mask."))
    assert not all(torch.equal(after[k], v) for k, v in trained.prepared.items() if k.startswith("pattern."))


def test_trigger_state_round_trips_through_a_file(trained, tmp_path):
    images = trained.test.images[:64]
    stamped = trained.attack.apply_trigger(images)
    save_tensors(tmp_path / "trigger.safetensors", trained.attack.state_tensors())
    fresh = make()
    assert not torch.equal(fresh.apply_trigger(images), stamped)  # untrained generators differ
    fresh.load_state(load_tensors(tmp_path / "trigger.safetensors"))
    assert torch.equal(fresh.apply_trigger(images), stamped)
    assert stamped.dtype == torch.uint8 and stamped.shape == images.shape
    changed = (stamped != images).flatten(1).float().mean(1)
    assert 0 < changed.mean() < 0.15  # a sparse, per-image trigger
    with pytest.raises(DataError, match="input_aware"):
        make(width=4).load_state(trained.attack.state_tensors())


def test_poison_leaves_the_data_alone_and_the_triggered_set_excludes_the_target():
    attack = make()
    train = ImageSet(torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8), torch.arange(50) % 10)
    result = attack.poison(train, torch.Generator().manual_seed(0))
    assert torch.equal(result.train.images, train.images) and torch.equal(result.train.labels, train.labels)
    assert result.poison_indices.dtype == torch.int64 and len(result.poison_indices) == 0
    triggered = attack.triggered_test(train)
    assert len(triggered) == 45 and (triggered.labels != 0).all() and (triggered.attack_labels == 0).all()


def test_hook_splits_each_batch_and_trains_only_the_pattern_generator():
    attack = make(label_mode="all_to_all")  # poison_rate 0.3, cross_ratio 0.2 of 64: 19 and 13
    hook = attack.training_hook(torch.Generator().manual_seed(0), CPU)
    x = torch.rand(64, 1, 28, 28)
    y = torch.arange(64) % 10
    model = build_model(SPEC)
    new_x, new_y, extra = hook.transform(model, x, y)
    assert new_x.shape == x.shape and new_y.shape == y.shape
    assert torch.equal(new_y[:19], (y[:19] + 1) % 10) and torch.equal(new_y[19:], y[19:])
    assert torch.equal(new_x[32:], x[32:])  # clean samples untouched
    assert (new_x[:32] != x[:32]).flatten(1).any(1).all()  # backdoor and cross samples stamped
    assert new_x.min() >= 0 and new_x.max() <= 1
    assert extra is not None and extra.dim() == 0 and torch.isfinite(extra) and extra > 0
    (F.cross_entropy(model(new_x), new_y) + extra).backward()
    assert all(p.grad is not None for p in attack.pattern.parameters())
    assert all(p.grad is None for p in attack.mask.parameters())
    before = [p.detach().clone() for p in attack.pattern.parameters()]
    hook.after_step()
    assert any(not torch.equal(a, p) for a, p in zip(before, attack.pattern.parameters()))
    hook.transform(model, x, y)  # each batch starts from zeroed generator gradients
    assert all(p.grad is None for p in attack.pattern.parameters())


def test_cross_trigger_samples_carry_another_images_trigger():
    attack = make()
    hook = attack.training_hook(torch.Generator().manual_seed(0), CPU)
    x = torch.rand(64, 1, 28, 28)
    with torch.no_grad():
        new_x, _, _ = hook.transform(build_model(SPEC), x, torch.zeros(64, dtype=torch.long))
        patterns, masks = attack.pattern(x[:32]), attack.mask(x[:32])  # same batch, same BN statistics
    own = blend(x[:32], patterns, masks)
    assert torch.allclose(new_x[:19], own[:19], atol=1e-6)  # backdoor: the image's own trigger
    for i in range(19, 32):  # cross: the trigger of one other image among the first 32
        sources = [j for j in range(32) if torch.allclose(new_x[i], blend(x[i], patterns[j], masks[j]), atol=1e-6)]
        assert len(sources) == 1 and sources[0] != i, (i, sources)


def test_all_to_all_attack_labels_are_the_next_class():
    attack = make(label_mode="all_to_all")
    labels = torch.arange(10).repeat(3)
    assert torch.equal(attack.attack_labels(labels), (labels + 1) % 10)
    assert torch.equal(attack.candidates(labels), torch.arange(30))


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 30, 30)])
def test_generators_fit_other_image_shapes(shape):
    attack = make(shape)
    images = torch.randint(0, 256, (4, *shape), dtype=torch.uint8)
    stamped = attack.apply_trigger(images)
    assert stamped.shape == images.shape and stamped.dtype == torch.uint8
    assert attack.masks(images).shape == (4, 1, *shape[1:])


@pytest.mark.parametrize("field, value", [("mask_density", 0.0), ("mask_density", 1.5), ("cross_ratio", 0.95),
                                          ("lambda_norm", -1.0), ("generator_lr", 0.0), ("mask_epochs", 0),
                                          ("width", 0), ("width", -2), ("mask_batch_size", 1)])
def test_bad_values_name_their_key(field, value):
    with pytest.raises(ConfigError, match=f"attacks.ia.{field}"):
        make(**{field: value})
