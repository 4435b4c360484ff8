"""SSBA: the fitted encoder hides the string invisibly and per image, poisoning relabels the asked
count, a small CNN learns the backdoor, the state round-trips, and bad params name their key.

The encoder is fitted once per module on 1,000 Fashion-MNIST images (200 steps of batch 32,
about 6 s on one core); the victim trains on 2,000 other images for 6 epochs without augmentation
(with the pipeline's crop-and-flip, a faint trigger needs more data or epochs than a test affords:
on 11,000 images, 8 epochs, width 16, the default attack reached 0.99 ASR)."""

from __future__ import annotations

import pytest
import torch

from backdoorlab.attacks import AttackerResources, build_attack
from backdoorlab.data import ImageSet
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.io import load_tensors, save_tensors
from backdoorlab.training.loop import predict_logits
from conftest import CPU, SMALL_CNN as SPEC, pool_splits, train_small_cnn

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

SECTION = {"method": "ssba", "target": 0, "poison_rate": 0.1, "steps": 200, "batch_size": 32}


@pytest.fixture(scope="module")
def fitted():
    """The attack fitted on an attacker split, plus disjoint victim-train and test splits."""
    attacker, train, test = pool_splits(1000, 2000, 600)
    attack = build_attack("s", SECTION, (1, 28, 28), 10)
    attack.prepare(AttackerResources(attacker, SPEC, CPU, torch.Generator().manual_seed(1)))
    return attack, train, test


def test_triggers_are_invisible_sample_specific_and_carry_the_string(fitted):
    attack, _, test = fitted
    images = test.images[:300]  # never seen by the encoder
    quality = attack.fidelity(images)
    assert quality["psnr"] > 25 and quality["bit_accuracy"] > 0.9, quality
    assert 1 < quality["mean_abs_residual"] < 12, quality  # a real but faint change (pixel units)

    triggered = attack.apply_trigger(images)
    assert triggered.dtype == torch.uint8 and triggered.shape == images.shape
    residual = (triggered.float() - images.float()).flatten(1)
    # Sample-specific: each image's residual is far from the others' mean (a fixed additive
    # pattern would give 0), and two images' residuals differ by much more than rounding.
    assert quality["specificity"] > 0.3, quality
    pair_gap = (residual[:-1] - residual[1:]).abs().mean(1) / residual[:-1].abs().mean(1)
    assert pair_gap.median() > 0.5, pair_gap.median()
    # The trigger is the string: another string in the same encoder gives another residual.
    other = attack.encoder(images.float() / 255, 1 - attack.secret_bits.expand(len(images), -1)).detach()
    assert (other.flatten(1) * 255 - residual).abs().mean() > 0.5 * residual.abs().mean()
    # An image's trigger does not depend on the batch it is stamped with (up to a rounding step).
    assert (attack.apply_trigger(images[:1]).int() - triggered[:1].int()).abs().max() <= 1


def test_poisoning_relabels_exactly_the_asked_count_of_non_target_images(fitted):
    attack, train, _ = fitted
    data = train.subset(torch.arange(500))
    result = attack.poison(data, torch.Generator().manual_seed(3))
    chosen = result.poison_indices
    assert len(chosen) == round(0.1 * 500) == len(set(chosen.tolist()))
    assert (data.labels[chosen] != 0).all() and (result.train.labels[chosen] == 0).all()
    assert torch.equal(result.train.images[chosen], attack.apply_trigger(data.images[chosen]))
    untouched = torch.ones(len(data), dtype=torch.bool)
    untouched[chosen] = False
    assert torch.equal(result.train.images[untouched], data.images[untouched])
    assert torch.equal(result.train.labels[untouched], data.labels[untouched])
    triggered = attack.triggered_test(data)
    assert len(triggered) == int((data.labels != 0).sum()) and (triggered.attack_labels == 0).all()


def test_a_small_cnn_learns_the_backdoor(fitted):
    attack, train, test = fitted
    triggered = attack.triggered_test(test)
    backdoored = train_small_cnn(attack.poison(train, torch.Generator().manual_seed(4)).train)
    clean = train_small_cnn(train)

    def target_rate(model: torch.nn.Module, images: torch.Tensor) -> float:
        return (predict_logits(model, images, CPU).argmax(1) == attack.target).float().mean().item()

    asr = target_rate(backdoored, triggered.images)
    clean_model_rate = target_rate(clean, triggered.images)
    without_trigger = target_rate(backdoored, test.images[test.labels != 0])
    accuracy = (predict_logits(backdoored, test.images, CPU).argmax(1) == test.labels).float().mean().item()
    assert asr > 0.6 and asr > clean_model_rate + 0.4 and asr > without_trigger + 0.4, \
        (asr, clean_model_rate, without_trigger)
    assert accuracy > 0.7, accuracy


def test_state_round_trips_into_a_freshly_built_attack(fitted, tmp_path):
    attack, _, test = fitted
    state = attack.state_tensors()
    assert {"secret_bits", "encoder.bits_map.weight", "decoder.bits.weight"} <= set(state)
    assert torch.equal(state["secret_bits"].float(), attack.secret())  # drawn from secret_seed
    save_tensors(tmp_path / "trigger.safetensors", state)

    fresh = build_attack("s", SECTION, (1, 28, 28), 10)
    with pytest.raises(RuntimeError, match="not fitted"):
        fresh.apply_trigger(test.images[:2])
    fresh.load_state(load_tensors(tmp_path / "trigger.safetensors"))
    assert torch.equal(fresh.apply_trigger(test.images[:200]), attack.apply_trigger(test.images[:200]))
    assert fresh.fidelity(test.images[:50]) == attack.fidelity(test.images[:50])

    wider = build_attack("s", {**SECTION, "width": 12}, (1, 28, 28), 10)
    with pytest.raises(DataError, match="re-run the poison stage"):
        wider.load_state(state)


def test_works_on_rgb_images_and_in_all_to_all_mode():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (48, 3, 32, 32), generator=g, dtype=torch.uint8)
    data = ImageSet(images, torch.arange(48) % 10)
    attack = build_attack("rgb", {"method": "ssba", "label_mode": "all_to_all", "steps": 3, "batch_size": 16,
                                  "n_bits": 8, "width": 4}, (3, 32, 32), 10)
    attack.prepare(AttackerResources(data, SPEC, CPU, torch.Generator().manual_seed(1)))
    stamped = attack.apply_trigger(images[:5])
    assert stamped.shape == (5, 3, 32, 32) and stamped.dtype == torch.uint8
    result = attack.poison(data, torch.Generator().manual_seed(2))
    chosen = result.poison_indices
    assert len(chosen) == 5 and torch.equal(result.train.labels[chosen], (data.labels[chosen] + 1) % 10)
    assert set(attack.fidelity(images[:4])) == {"psnr", "bit_accuracy", "mean_abs_residual", "specificity"}


@pytest.mark.parametrize("field, value", [("n_bits", 0), ("steps", 0), ("lr", 0.0), ("width", 0),
                                          ("residual_weight", -1.0), ("warmup_fraction", 1.5),
                                          ("ramp_fraction", 0.95), ("poison_rate", 1.0)])
def test_bad_config_values_name_their_key(field, value):
    with pytest.raises(ConfigError, match=rf"attacks\.s\.{field}"):
        build_attack("s", {"method": "ssba", field: value}, (1, 28, 28), 10)
