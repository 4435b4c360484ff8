"""Membership inference: chance on a member-free split, clearly above chance on an overfitted model,
for the metric-based attacks and for the shadow-model attack."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from conftest import fashion_pool
from sequela_checks import CPU, context, sequela_attack, train_tiny
from torch import nn

from backdoorlab.data import ImageSet
from backdoorlab.errors import DataError
from backdoorlab.sequela.base import ShadowOutputs
from backdoorlab.sequela.scores import best_threshold, membership_report, roc_auc
from backdoorlab.training.loop import predict_logits

METRICS = ["loss", "confidence", "entropy", "modified_entropy"]


@dataclass
class Overfitted:
    model: nn.Module
    members: ImageSet  # its 200 training samples
    non_members: ImageSet
    shadows: list[ShadowOutputs]  # of shadow models trained the same way on disjoint data


@pytest.fixture(scope="module")
def overfitted(planted) -> Overfitted:
    """A tiny model memorising 200 samples (20 epochs, no augmentation), and two shadow models
    trained the same way on 200 other samples each; all drawn outside the planted train/test."""
    pool = fashion_pool()
    spare = pool.subset(torch.arange(5000, len(pool))[torch.randperm(len(pool) - 5000,
                                                                      generator=torch.Generator().manual_seed(3))])
    chunk = [spare.subset(torch.arange(i * 200, (i + 1) * 200)) for i in range(6)]
    shadows = []
    for i in range(2):
        members, non_members = chunk[2 + 2 * i], chunk[3 + 2 * i]
        shadow = train_tiny(planted, members, 20, seed=10 + i)
        shadows.append(ShadowOutputs(predict_logits(shadow, members.images, CPU),
                                     predict_logits(shadow, non_members.images, CPU)))
    return Overfitted(train_tiny(planted, chunk[0], 20, seed=1), chunk[0], chunk[1], shadows)


def halves(data: ImageSet) -> tuple[ImageSet, ImageSet]:
    half = len(data) // 2
    return data.subset(torch.arange(half)), data.subset(torch.arange(half, 2 * half))


def test_scores_reference_values():
    members, non_members = torch.tensor([3.0, 4.0, 5.0]), torch.tensor([1.0, 2.0, 3.0])
    assert roc_auc(members, non_members) == pytest.approx((8 + 0.5) / 9)  # one tie counts half
    assert best_threshold(members, non_members) == 3.0
    # calibration picks threshold 3; on the evaluation scores: 3/3 members, 2/3 non-members right
    report = membership_report(members, non_members, torch.tensor([3.0, 9.0]), torch.tensor([0.0, 2.0]), 0.01)
    assert report["bal_acc"] == pytest.approx(5 / 6)
    assert report["tpr_at_fpr0.01"] == pytest.approx(2 / 3)  # above the non-members' 99th percentile


def test_metric_mia_is_chance_without_members(planted):
    """Two halves of one set of images the model never saw: no attack can tell them apart."""
    unseen = fashion_pool().subset(torch.arange(13000, 15000))  # outside the planted train/test
    a, b = halves(unseen.subset(torch.arange(1000)))
    c, d = halves(unseen.subset(torch.arange(1000, 2000)))
    results = sequela_attack("mia_metric", metrics=METRICS).run(planted.model(), context(planted, a, b, c, d))
    for metric in METRICS:  # 500 vs 500: the AUC's standard error is about 0.018
        assert abs(results[f"{metric}.auc"] - 0.5) < 0.06, (metric, results)
        assert abs(results[f"{metric}.bal_acc"] - 0.5) < 0.06, (metric, results)


def test_metric_mia_detects_an_overfitted_model(planted, overfitted):
    members, cal_members = halves(overfitted.members)
    non_members, cal_non_members = halves(overfitted.non_members)
    ctx = context(planted, members, non_members, cal_members, cal_non_members)
    results = sequela_attack("mia_metric", metrics=METRICS).run(overfitted.model, ctx)
    for metric in METRICS:
        assert results[f"{metric}.auc"] > 0.65, (metric, results)
        assert results[f"{metric}.bal_acc"] > 0.6, (metric, results)


def test_shadow_mia_beats_chance_on_an_overfitted_model(planted, overfitted):
    members, cal_members = halves(overfitted.members)
    non_members, cal_non_members = halves(overfitted.non_members)
    ctx = context(planted, members, non_members, cal_members, cal_non_members, shadows=overfitted.shadows)
    torch.manual_seed(0)
    attack = sequela_attack("mia_shadow", steps=200)
    results = attack.run(overfitted.model, ctx)
    assert results["auc"] > 0.65 and results["bal_acc"] > 0.6, results
    a, b = halves(planted.test.subset(torch.arange(400)))
    chance = attack.run(overfitted.model, context(planted, a, b, a, b, shadows=overfitted.shadows))
    assert abs(chance["auc"] - 0.5) < 0.1, chance


def test_shadow_mia_needs_shadow_models(planted):
    a, b = halves(planted.test.subset(torch.arange(100)))
    with pytest.raises(DataError, match="sequela.attacks.mia_shadow: no shadow models"):
        sequela_attack("mia_shadow").run(planted.model(), context(planted, a, b, a, b))
