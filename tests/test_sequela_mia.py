"""Membership inference: chance on a member-free split, clearly above chance on an overfitted model,
for the metric-based attacks, the shadow-model attack and RMIA; the bootstrap behind the report's
standard errors."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from conftest import fashion_pool
from sequela_checks import CPU, context, sequela_attack, train_tiny
from torch import nn

from backdoorlab.data import ImageSet
from backdoorlab.errors import ConfigError, DataError
from backdoorlab.sequela.base import ReferenceModels
from backdoorlab.sequela.scores import (best_threshold, bootstrap_draws, bootstrap_metrics, membership_report, roc_auc,
                                        tpr_at_fpr)
from backdoorlab.training.loop import predict_logits

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

METRICS = ["loss", "confidence", "entropy", "modified_entropy"]


@dataclass
class Overfitted:
    model: nn.Module
    members: ImageSet  # its 200 training samples
    non_members: ImageSet
    reference: ReferenceModels  # shadow models trained the same way on halves of disjoint data


@pytest.fixture(scope="module")
def overfitted(planted) -> Overfitted:
    """A tiny model memorising 200 samples (20 epochs, no augmentation), and four shadow models
    trained the same way on seeded halves of 400 other samples; all outside the planted train/test."""
    pool = fashion_pool()
    spare = pool.subset(torch.arange(5000, len(pool))[torch.randperm(len(pool) - 5000,
                                                                      generator=torch.Generator().manual_seed(3))])
    members, non_members = spare.subset(torch.arange(200)), spare.subset(torch.arange(200, 400))
    population = spare.subset(torch.arange(400, 800))
    trained_on, models = [], []
    for i in range(4):
        half = torch.randperm(len(population), generator=torch.Generator().manual_seed(20 + i))[:len(population) // 2]
        trained_on.append(torch.zeros(len(population), dtype=torch.bool).index_fill_(0, half, True))
        models.append(train_tiny(planted, population.subset(half), 20, seed=10 + i))
    logits = torch.stack([predict_logits(m, population.images, CPU) for m in models])
    reference = ReferenceModels(population, logits, torch.stack(trained_on), models)
    return Overfitted(train_tiny(planted, members, 20, seed=1), members, non_members, reference)


def halves(data: ImageSet) -> tuple[ImageSet, ImageSet]:
    half = len(data) // 2
    return data.subset(torch.arange(half)), data.subset(torch.arange(half, 2 * half))


def test_scores_reference_values():
    members, non_members = torch.tensor([3.0, 4.0, 5.0]), torch.tensor([1.0, 2.0, 3.0])
    assert roc_auc(members, non_members) == pytest.approx((8 + 0.5) / 9)  # one tie counts half
    assert best_threshold(members, non_members) == 3.0
    # calibration picks threshold 3; on the evaluation scores: 3/3 members, 2/3 non-members right
    report = membership_report(members, non_members, torch.tensor([3.0, 9.0]), torch.tensor([0.0, 2.0]), [0.01])
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
    assert results["train_acc"] == 1.0 and results["gap"] > 0.1, results  # memorised: the gap the scores feed on


def test_rmia_detects_an_overfitted_model_and_not_unseen_data(planted, overfitted):
    """Well above chance on the memorised samples; at chance on two halves of images the model never saw."""
    members, cal_members = halves(overfitted.members)
    non_members, cal_non_members = halves(overfitted.non_members)
    attack = sequela_attack("mia_rmia", population=300)
    measured = attack.measure(overfitted.model, context(planted, members, non_members, cal_members, cal_non_members,
                                                        reference=overfitted.reference))
    assert measured.metrics["auc"] > 0.75, measured.metrics
    assert 0 <= measured.metrics["offline_a"] <= 1
    assert set(measured.scores) == {""} and len(measured.scores[""].members) == len(members)
    unseen = fashion_pool().subset(torch.arange(13000, 14000))  # outside the planted train/test and the spare pool
    a, b = halves(unseen.subset(torch.arange(500)))
    c, d = halves(unseen.subset(torch.arange(500, 1000)))
    chance = attack.run(overfitted.model, context(planted, a, b, c, d, reference=overfitted.reference))
    assert abs(chance["auc"] - 0.5) < 0.07, chance  # 250 vs 250: standard error about 0.026


def test_rmia_needs_two_shadow_models_to_choose_a(planted, overfitted):
    one = overfitted.reference
    single = ReferenceModels(one.population, one.logits[:1], one.trained_on[:1], one.models[:1])
    a, b = halves(planted.test.subset(torch.arange(100)))
    with pytest.raises(ConfigError, match="sequela.attacks.mia_rmia.offline_a: choosing a needs at least 2"):
        sequela_attack("mia_rmia").run(overfitted.model, context(planted, a, b, a, b, reference=single))
    fixed = sequela_attack("mia_rmia", offline_a=0.3).run(overfitted.model, context(planted, a, b, a, b, reference=single))
    assert fixed["offline_a"] == 0.3


def test_bootstrap_resamples_equal_the_metrics_of_resampled_data():
    """Each draw's AUC and TPR, computed from counts at once, is the metric of the resampled scores."""
    generator = torch.Generator().manual_seed(0)
    members, non_members = (torch.randn(300, generator=generator) + 0.7).round(decimals=1), \
        torch.randn(250, generator=generator).round(decimals=1)  # rounded: ties
    counts = bootstrap_draws(300, 250, 20, generator)
    draws = bootstrap_metrics(members, non_members, counts, [0.01, 0.1])
    for d in range(20):
        m = torch.repeat_interleave(torch.arange(300), counts[0][d].long())
        n = torch.repeat_interleave(torch.arange(250), counts[1][d].long())
        assert draws["auc"][d].item() == pytest.approx(roc_auc(members[m], non_members[n]))
        for fpr in (0.01, 0.1):
            assert draws[f"tpr_at_fpr{fpr:g}"][d].item() == pytest.approx(tpr_at_fpr(members[m], non_members[n], fpr))


def test_bootstrap_standard_errors():
    """The AUC's spread matches the usual n^-1/2 size; a model against itself changes by exactly 0,
    and a paired change is more precise than either model's AUC alone."""
    generator = torch.Generator().manual_seed(1)
    members, non_members = torch.randn(500, generator=generator) + 0.5, torch.randn(500, generator=generator)
    counts = bootstrap_draws(500, 500, 400, generator)
    before = bootstrap_metrics(members, non_members, counts, [0.01])
    assert 0.01 < before["auc"].std().item() < 0.025  # Hanley-McNeil: about 0.018 at AUC 0.64
    assert (bootstrap_metrics(members, non_members, counts, [0.01])["auc"] - before["auc"]).abs().max() == 0
    shifted = bootstrap_metrics(members + 0.1 * torch.randn(500, generator=generator), non_members, counts, [0.01])
    assert (shifted["auc"] - before["auc"]).std() < 0.5 * before["auc"].std()


def test_shadow_mia_beats_chance_on_an_overfitted_model(planted, overfitted):
    members, cal_members = halves(overfitted.members)
    non_members, cal_non_members = halves(overfitted.non_members)
    ctx = context(planted, members, non_members, cal_members, cal_non_members, reference=overfitted.reference)
    torch.manual_seed(0)
    attack = sequela_attack("mia_shadow", steps=200)
    results = attack.run(overfitted.model, ctx)
    assert results["auc"] > 0.65 and results["bal_acc"] > 0.6, results
    a, b = halves(planted.test.subset(torch.arange(400)))
    chance = attack.run(overfitted.model, context(planted, a, b, a, b, reference=overfitted.reference))
    assert abs(chance["auc"] - 0.5) < 0.1, chance


def test_shadow_mia_needs_shadow_models(planted):
    a, b = halves(planted.test.subset(torch.arange(100)))
    with pytest.raises(DataError, match="sequela.attacks.mia_shadow: no shadow models"):
        sequela_attack("mia_shadow").run(planted.model(), context(planted, a, b, a, b))


def test_reference_models_restricted_to_a_task_of_fewer_classes(overfitted):
    """For a paradigm's downstream task: the samples of its classes, relabelled in task order, and the
    models' logits of those classes, from the stored logits and from the models alike."""
    reference, classes = overfitted.reference, [3, 1, 7]
    keep = torch.isin(reference.population.labels, torch.tensor(classes))
    relabel = {3: 0, 1: 1, 7: 2}
    population = ImageSet(reference.population.images[keep],
                          torch.tensor([relabel[int(y)] for y in reference.population.labels[keep]]))
    task = reference.restricted(classes, population)
    assert task.logits.shape == (4, int(keep.sum()), 3) and task.trained_on.shape == (4, int(keep.sum()))
    assert torch.equal(task.logits[0], reference.logits[0][keep][:, classes])
    assert torch.allclose(predict_logits(task.models[2], population.images, CPU), task.logits[2], atol=1e-5)
    assert len(task.members_of(1)) == int((reference.trained_on[1] & keep).sum())
