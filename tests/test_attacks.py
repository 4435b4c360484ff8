"""Poisoning: counts, labels, trigger placement, and the triggered test set."""

from __future__ import annotations

import pytest
import torch

from backdoorlab.attacks import AttackerResources, build_attack
from backdoorlab.data import ImageSet
from backdoorlab.errors import ConfigError
from backdoorlab.models.base import ModelSpec

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


def toy_set(n: int = 200) -> ImageSet:
    g = torch.Generator().manual_seed(0)
    return ImageSet(torch.randint(0, 100, (n, 1, 28, 28), generator=g, dtype=torch.uint8),
                    torch.arange(n) % 10)


def test_badnets_poisons_the_asked_fraction_of_non_target_samples():
    attack = build_attack("b", {"method": "badnets", "target": 3, "poison_rate": 0.1}, (1, 28, 28), 10)
    train = toy_set()
    result = attack.poison(train, torch.Generator().manual_seed(1))
    assert len(result.poison_indices) == 20
    assert (train.labels[result.poison_indices] != 3).all()
    assert (result.train.labels[result.poison_indices] == 3).all()
    assert (result.train.images[result.poison_indices, :, -3:, -3:] == 255).all()
    untouched = torch.ones(len(train), dtype=torch.bool)
    untouched[result.poison_indices] = False
    assert torch.equal(result.train.images[untouched], train.images[untouched])
    assert torch.equal(result.train.labels[untouched], train.labels[untouched])


def test_checkerboard_patch_alternates():
    attack = build_attack("b", {"method": "badnets", "pattern": "checkerboard", "position": "top_left"},
                          (1, 28, 28), 10)
    stamped = attack.apply_trigger(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    assert stamped[0, 0, :3, :3].tolist() == [[255, 0, 255], [0, 255, 0], [255, 0, 255]]
    assert stamped[0, 0, 3:, :].sum() == 0


def test_triggered_test_set_excludes_the_target_class_and_keeps_true_labels():
    attack = build_attack("b", {"method": "blended", "target": 0, "alpha": 0.2}, (1, 28, 28), 10)
    test = toy_set()
    triggered = attack.triggered_test(test)
    assert len(triggered) == 180 and (triggered.labels != 0).all()


def test_blended_pattern_is_reproducible_from_its_seed_and_mixes_with_alpha():
    section = {"method": "blended", "alpha": 0.2, "pattern_seed": 7}
    a = build_attack("x", section, (1, 28, 28), 10)
    b = build_attack("x", section, (1, 28, 28), 10)
    assert torch.equal(a.pattern(), b.pattern())
    black = a.apply_trigger(torch.zeros(1, 1, 28, 28, dtype=torch.uint8))
    assert torch.allclose(black[0].float(), (0.2 * a.pattern().float()).round(), atol=1)


def test_all_to_all_relabels_each_poison_to_the_next_class_and_measures_asr_per_sample():
    attack = build_attack("b", {"method": "badnets", "label_mode": "all_to_all", "poison_rate": 0.1},
                          (1, 28, 28), 10)
    train = toy_set()
    result = attack.poison(train, torch.Generator().manual_seed(1))
    chosen = result.poison_indices
    assert len(chosen) == 20
    assert torch.equal(result.train.labels[chosen], (train.labels[chosen] + 1) % 10)
    triggered = attack.triggered_test(toy_set())
    assert len(triggered) == 200  # every class has a different attack label: nothing is excluded
    assert torch.equal(triggered.attack_labels, (triggered.labels + 1) % 10)


def test_clean_label_attacks_reject_all_to_all_naming_the_key():
    with pytest.raises(ConfigError, match="attacks.s.label_mode"):
        build_attack("s", {"method": "sig", "label_mode": "all_to_all"}, (1, 28, 28), 10)


def test_sig_adds_a_horizontal_sinusoid_to_target_images_only_and_keeps_labels():
    attack = build_attack("s", {"method": "sig", "target": 2, "poison_rate": 0.05, "delta": 30}, (1, 28, 28), 10)
    train = toy_set()
    result = attack.poison(train, torch.Generator().manual_seed(1))
    assert len(result.poison_indices) == 10 and (train.labels[result.poison_indices] == 2).all()
    assert torch.equal(result.train.labels, train.labels)  # clean label
    signal = attack.signal()[0, 0]
    assert torch.equal(signal[0], signal[13]) and signal.abs().max() == pytest.approx(30, rel=0.05)
    grey = torch.full((1, 1, 28, 28), 100, dtype=torch.uint8)
    assert torch.allclose(attack.apply_trigger(grey)[0, 0].float(), (100 + signal).round())
    with pytest.raises(ConfigError, match="target class"):
        build_attack("s", {"method": "sig", "target": 2, "poison_rate": 0.2}, (1, 28, 28), 10).poison(
            train, torch.Generator())


def test_wanet_warp_is_small_smooth_and_its_noise_mode_keeps_labels():
    attack = build_attack("w", {"method": "wanet"}, (1, 28, 28), 10)
    grid = attack.warp_grid()[0]
    line = torch.linspace(-1, 1, 28)
    identity = torch.stack(torch.meshgrid(line, line, indexing="xy"), dim=2)
    shift_pixels = (grid - identity).abs().max() * 27 / 2
    assert 0.1 < shift_pixels < 1.5  # strength 0.5: under a pixel or so, invisible
    images = toy_set(8).images
    assert (attack.apply_trigger(images).float() - images.float()).abs().mean() > 1  # it does move pixels
    hook = attack.training_hook(torch.Generator().manual_seed(0), torch.device("cpu"))
    x, y = torch.rand(100, 1, 28, 28), torch.arange(100) % 10
    new_x, new_y, extra = hook.transform(None, x, y)
    changed = (new_x - x).flatten(1).abs().amax(1) > 0
    assert torch.equal(new_y, y) and extra is None
    assert changed.sum() == 20  # cross_ratio 2 x poison_rate 0.1 of the batch
    again, _, _ = hook.transform(None, x, y)
    assert not torch.equal(again, new_x)  # fresh noise (and samples) every batch


def test_lf_trigger_is_low_frequency_bounded_and_restorable():
    pool = toy_set(600)
    pool = ImageSet(pool.images * 2, pool.labels)  # some contrast
    spec = ModelSpec("small_cnn", {"width": 4}, 1, 28, 10, (0.3,), (0.3,))
    attack = build_attack("l", {"method": "lf", "target": 1, "eps": 0.08, "cutoff": 0.2, "steps": 40,
                                "surrogate_epochs": 1}, (1, 28, 28), 10)
    torch.manual_seed(0)
    attack.prepare(AttackerResources(pool, spec, torch.device("cpu"), torch.Generator().manual_seed(0)))
    delta = attack.state_tensors()["perturbation"]
    assert delta.abs().max() <= 0.08 + 1e-6 and delta.abs().max() > 0.02
    spectrum = torch.fft.rfft2(delta).abs()
    fy = torch.fft.fftfreq(28).abs().view(28, 1) / 0.5
    fx = torch.fft.rfftfreq(28).view(1, -1) / 0.5
    high = (fy ** 2 + fx ** 2).sqrt() > 0.2
    assert spectrum[:, high].max() < 1e-4 * spectrum.max()  # nothing above the cutoff
    fresh = build_attack("l", {"method": "lf", "target": 1}, (1, 28, 28), 10)
    fresh.load_state(attack.state_tensors())
    assert torch.equal(fresh.apply_trigger(pool.images[:5]), attack.apply_trigger(pool.images[:5]))
