"""What the sequela stages hand the sequela attacks, and how they run them.

Shared by the ``sequela`` stage (every attack on one cell's model) and the ``reinject_baseline``
stage (re-injection on the clean model). Every random draw depends on the victim, the replicate
and the sequela instance only, never on the defense: all defenses of one victim and seed, and the
clean baseline, are probed with the same samples, starts and poisons, so their differences are not
sampling noise.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from typing import Mapping

import torch
from torch import nn

from backdoorlab.config import Params, derive_seed, generator_for
from backdoorlab.errors import DataError
from backdoorlab.io import load_tensors
from backdoorlab.layout import paradigm_of, regime_of, shadow_model_file, shadow_splits_file
from backdoorlab.models.base import load_model
from backdoorlab.pipeline.victims import (Task, load_attack, load_poisoned, load_splits, load_task, model_spec,
                                          task_classes)
from backdoorlab.sequela.base import (MembershipScores, ReferenceModels, SequelaAttack, SequelaContext,
                                      SequelaSettings, parse_sequela)
from backdoorlab.settings import require


def sequela_settings(params: Params, methods: set[str] | None = None) -> SequelaSettings:
    """params.yaml's ``sequela`` section: sample sizes, shadow models, the attack instances (of
    ``methods`` only, if given)."""
    return parse_sequela(params.section("sequela"), methods)


def load_reference(params: Params, settings: SequelaSettings, victim: str, task: Task) -> ReferenceModels:
    """The shadow models of the victim's recipe (the default one, or its regime's), with their
    logits on the shadow split and which half each trained on (written by the shadow stage); for a
    paradigm's task of fewer classes, as classifiers of those classes on their shadow samples."""
    regime = regime_of(params, victim)
    path, count = shadow_splits_file(regime), settings.shadow.models
    tensors = load_tensors(path)
    if tensors.get("logits") is None or len(tensors["logits"]) != count:
        raise DataError(f"{path}: not the {count} shadow models of sequela.shadow.models (run the shadow stage)")
    device, spec = params.torch_device(), model_spec(params)  # the shadow models' task: every class
    models = [load_model(spec, shadow_model_file(regime, i)).to(device).eval() for i in range(count)]
    reference = ReferenceModels(load_splits().shadow, tensors["logits"], tensors["trained_on"], models)
    paradigm = paradigm_of(params, victim)
    if paradigm is None or task.spec.num_classes == spec.num_classes:
        return reference
    return reference.restricted(task_classes(params, paradigm, spec.num_classes), task.splits.shadow)


def build_context(params: Params, settings: SequelaSettings, victim: str, seed: int, defense_fraction: float,
                  label: str, with_shadows: bool) -> SequelaContext:
    """Members: training samples the backdoored model saw unpoisoned; non-members: held-out test
    samples; each split in an evaluation half and a calibration half of ``sequela.samples`` (capped at
    half the smaller pool, which binds for a paradigm's downstream task of a few classes and for a
    regime's small training set)."""
    task = load_task(params, victim)
    splits = task.splits
    poisoned = load_poisoned(victim, seed)
    attack = load_attack(params, victim, seed)
    n = settings.samples
    clean_mask = torch.ones(len(poisoned.train), dtype=torch.bool)
    clean_mask[poisoned.poison_indices] = False
    member_pool = torch.nonzero(clean_mask).flatten()
    members = member_pool[torch.randperm(len(member_pool), generator=generator_for(seed, "mia", victim))]
    non_members = torch.randperm(len(splits.test), generator=generator_for(seed, "mia", victim, "out"))
    if min(len(members), len(non_members)) < 2 * n:  # a paradigm's downstream task can be a share of the test split
        n = min(len(members), len(non_members)) // 2
        print(f"[{label}] sequela.samples capped at {n}: the task has {len(members)} members and "
              f"{len(non_members)} non-members", file=sys.stderr)
    require(n > 0, "sequela.samples", f"the task has {len(members)} members and {len(non_members)} non-members")
    return SequelaContext(
        spec=task.spec, device=params.torch_device(),
        generator=torch.Generator(),  # replaced per instance by run_attacks
        members=poisoned.train.subset(members[:n]), non_members=splits.test.subset(non_members[:n]),
        calibration_members=poisoned.train.subset(members[n:2 * n]),
        calibration_non_members=splits.test.subset(non_members[n:2 * n]),
        clean_test=splits.test, attack=attack,
        defense_data=splits.defense_subset(defense_fraction), triggered_test=attack.triggered_test(splits.test),
        reference=load_reference(params, settings, victim, task) if with_shadows else None, label=label)


def run_attacks(victim: str, seed: int, attacks: Mapping[str, SequelaAttack], model: nn.Module,
                ctx: SequelaContext) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """``{"<instance>.<metric>": value}`` plus ``<instance>.seconds``, each instance seeded by
    (seed, victim, instance) alone; and the membership attacks' evaluation scores,
    ``{"<instance>[.<score>]/members": ..., ".../non_members": ...}``."""
    results: dict[str, float] = {}
    scores: dict[str, torch.Tensor] = {}
    for name, attack in attacks.items():
        torch.manual_seed(derive_seed(seed, "sequela", victim, name))
        instance_ctx = dataclasses.replace(ctx, generator=generator_for(seed, "sequela", victim, name))
        model.eval()
        started = time.perf_counter()
        measurement = attack.measure(model, instance_ctx)
        for metric, value in measurement.metrics.items():
            results[f"{name}.{metric}"] = value
        for score, values in measurement.scores.items():
            scores.update(score_tensors(f"{name}.{score}" if score else name, values))
        results[f"{name}.seconds"] = time.perf_counter() - started
        print(f"[{ctx.label}] {name} done ({results[f'{name}.seconds']:.1f} s)", file=sys.stderr)
    return results, scores


def score_tensors(prefix: str, scores: MembershipScores) -> dict[str, torch.Tensor]:
    """The evaluation scores the report resamples (the calibration ones only chose a threshold)."""
    return {f"{prefix}/members": scores.members.double(), f"{prefix}/non_members": scores.non_members.double()}
