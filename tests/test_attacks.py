"""Poisoning: counts, labels, trigger placement, and the triggered test set."""

from __future__ import annotations

import torch

from backdoorlab.attacks import build_attack
from backdoorlab.data import ImageSet


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
