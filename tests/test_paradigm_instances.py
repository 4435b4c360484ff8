"""The registered paradigms at tiny size, as their stages call them: pretrain -> implant -> fine_tune.

Both transfer threat models plant what they should: (a) a clean source model fine-tuned on
poisoned downstream data learns the backdoor; (b) the attacker's source model carries it (source
ASR), and more of it than the clean counterpart's chance level survives the victim's clean
training of a new head (the latent loss; little survives, as at default scale: README).
The encoder paradigm deploys encoder + linear head as the registry architecture itself.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from backdoorlab.attacks import build_attack
from backdoorlab.config import derive_seed
from backdoorlab.errors import ConfigError
from backdoorlab.metrics import backdoor_metrics
from backdoorlab.models import build_model
from backdoorlab.paradigms import ParadigmContext, build_paradigm
from backdoorlab.paradigms.transfer import class_subset
from backdoorlab.training.loop import OptimConfig
from backdoorlab.training.augment import AugmentConfig
from conftest import CPU, SMALL_CNN, pool_splits

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

RECIPE = OptimConfig(epochs=3, batch_size=64, lr=0.05, augment=AugmentConfig(crop_padding=0, hflip=False),
                     warmup_steps=10)
DOWNSTREAM = (0, 1, 2, 3, 4)


SHADOW, TRAIN, TEST = pool_splits(1000, 5000, 1000)


def paradigm_context(seed: int) -> ParadigmContext:
    return ParadigmContext(train=TRAIN, shadow=SHADOW, spec=SMALL_CNN, recipe=RECIPE, device=CPU,
                           seed=lambda *parts: derive_seed(seed, *parts), label="test")


@pytest.fixture(scope="module")
def ctx() -> ParadigmContext:
    return paradigm_context(0)


def downstream_task(ctx: ParadigmContext):
    """The victim's training and test images of the downstream classes, and its blueprint."""
    return class_subset(ctx.train, DOWNSTREAM), class_subset(TEST, DOWNSTREAM), dataclasses.replace(SMALL_CNN, num_classes=5)


def badnets(num_classes: int):
    return build_attack("badnets", {"method": "badnets", "target": 0, "poison_rate": 0.1}, (1, 28, 28), num_classes)


def test_transfer_data_plants_through_a_clean_source_model(ctx):
    paradigm = build_paradigm("transfer_data", {"method": "transfer_data", "pretrain": {"epochs": 2},
                                                "downstream": {"fine_tune": "all", "epochs": 3, "lr": 0.02}})
    upstream = paradigm.pretrain(ctx)
    assert upstream.notes["source_ca"] > 0.7  # a real source model, on the attacker's held-out images
    published = paradigm.implant(upstream.model, badnets(5), ctx)
    assert published.model is upstream.model and not published.notes["backdoored_upstream"]
    train, test, task = downstream_task(ctx)
    attack = badnets(5)
    poisoned = attack.poison(train, torch.Generator().manual_seed(1))
    model = paradigm.fine_tune(published.model, poisoned.train, task, ctx)
    metrics = backdoor_metrics(model, test, attack.triggered_test(test), CPU)
    assert metrics["asr"] > 0.8 and metrics["ca"] > 0.7, metrics


def test_transfer_model_source_carries_the_backdoor_and_some_survives_transfer():
    """The victim trains a new head on the attacker's source model (``fine_tune: head``): what
    survives is then the latent backdoor alone. Measured over seeds 0-5 on the AVX2 and portable
    kernel paths at one thread (2026-12-07): victim ASR 4.7-15.7% against the clean counterpart's
    1.2-3.7%, the gap 2.5-12.0 points per seed, so the test asserts the mean of three seeds' gaps
    (6.5-6.6 points there). With ``last_block`` fine-tuning, the paradigm's default, the gap was
    -1.5 to 9.4 points per seed and its three-seed mean 3.5-4.9: too close to chance to assert at
    this size."""
    paradigm = build_paradigm("transfer_model", {
        "method": "transfer_model", "task": {"source_classes": [0, 5, 6, 7, 8, 9], "downstream_classes": list(DOWNSTREAM)},
        "pretrain": {"epochs": 3}, "downstream": {"fine_tune": "head", "epochs": 2, "lr": 0.01}})
    attack = badnets(5)
    paradigm.check_attack(attack, "key")
    gaps = []
    for seed in range(3):
        ctx = paradigm_context(seed)
        clean = paradigm.pretrain(ctx).model
        published = paradigm.implant(clean, attack, ctx)
        assert published.notes["source_asr"] > 0.9, published.notes  # the attacker's model carries it
        train, test, task = downstream_task(ctx)
        triggered = attack.triggered_test(test)
        victim = backdoor_metrics(paradigm.fine_tune(published.model, train, task, ctx), test, triggered, CPU)
        counterpart = backdoor_metrics(paradigm.fine_tune(clean, train, task, ctx), test, triggered, CPU)
        assert victim["ca"] > 0.7 and counterpart["ca"] > 0.7, (seed, victim, counterpart)
        gaps.append(victim["asr"] - counterpart["asr"])
    assert sum(gaps) / len(gaps) > 0.03, gaps


def test_transfer_model_needs_its_target_among_the_source_classes():
    paradigm = build_paradigm("tm", {"method": "transfer_model",
                                     "task": {"source_classes": [5, 6, 7], "downstream_classes": [0, 1, 2]}})
    with pytest.raises(ConfigError, match="must be one of task.source_classes"):
        paradigm.check_attack(badnets(3), "grid.paradigm_attacks[0]")


def test_encoder_deploys_the_registry_architecture(ctx):
    paradigm = build_paradigm("encoder", {"method": "encoder", "pretrain": {"images": 256, "epochs": 1, "batch_size": 64},
                                          "implant": {"epochs": 1, "batch_size": 64, "references": 2},
                                          "downstream": {"epochs": 2, "lr": 0.001}})
    encoder = paradigm.pretrain(ctx)
    assert encoder.notes["nt_xent_last"] > 0
    published = paradigm.implant(encoder.model, badnets(10), ctx)
    assert published.notes["clean_embedding_kept"] > 0.5
    model = paradigm.fine_tune(published.model, ctx.train.subset(torch.arange(500)), SMALL_CNN, ctx)
    assert model.state_dict().keys() == build_model(SMALL_CNN).state_dict().keys()


def test_an_mlp_head_is_refused_in_the_pipeline():
    with pytest.raises(ConfigError, match="paradigms.encoder.downstream.kind"):
        build_paradigm("encoder", {"method": "encoder", "downstream": {"kind": "mlp"}})


def test_a_task_of_some_classes_keeps_the_defenders_draw():
    """The transfer task's splits: only its classes, relabelled in list order; a defender of the
    task holds the task's images of the same seeded draw, in the same order."""
    from backdoorlab.pipeline.victims import Splits

    order = torch.randperm(len(TRAIN), generator=torch.Generator().manual_seed(3))
    splits = Splits(TRAIN, TEST, SHADOW, order)
    task = splits.restricted([3, 1])
    assert set(task.train.labels.tolist()) == {0, 1} and set(task.test.labels.tolist()) == {0, 1}
    assert len(task.train) == int(((TRAIN.labels == 3) | (TRAIN.labels == 1)).sum())
    kept = [int(i) for i in order if int(TRAIN.labels[i]) in (3, 1)]
    assert torch.equal(task.train.images[task.defense_order], TRAIN.images[kept])
    assert torch.equal(task.train.labels[task.defense_order], (TRAIN.labels[kept] == 1).long())
