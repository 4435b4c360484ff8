"""What the sequela stages hand the sequela attacks, and how they run them.

Shared by the ``sequela`` stage (every attack on one cell's model) and the ``reinject_baseline``
stage (re-injection on the clean model). Every random draw depends on the backdoor attack and the
sequela instance only, never on the defense: all defenses of one attack, and the clean baseline,
are probed with the same samples, starts and poisons, so their differences are not sampling noise.
(Outside the ``sequela`` package because it reads the workspace, which needs ``config``, which
imports that package.)
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
from backdoorlab.sequela import SequelaAttack, SequelaContext
from backdoorlab.sequela.base import ShadowOutputs
from backdoorlab.settings import require
from backdoorlab.workspace import SHADOW_SPLITS, load_attack, load_poisoned, load_task


def load_shadows(params: Params) -> list[ShadowOutputs]:
    """Each shadow model's logits on its members and non-members (written by the shadow stage)."""
    tensors = load_tensors(SHADOW_SPLITS)
    count = params.sequela.shadow.models
    if tensors.get("member_logits") is None or len(tensors["member_logits"]) != count:
        raise DataError(f"{SHADOW_SPLITS}: not the {count} shadow models of sequela.shadow.models "
                        "(run the shadow stage)")
    return [ShadowOutputs(tensors["member_logits"][i], tensors["non_member_logits"][i]) for i in range(count)]


def build_context(params: Params, attack_name: str, defense_fraction: float, label: str,
                  with_shadows: bool) -> SequelaContext:
    """Members: training samples the backdoored model saw unpoisoned; non-members: held-out test
    samples; each split in an evaluation half and a calibration half of ``sequela.samples`` (capped at
    half the smaller pool, which binds only for a paradigm's downstream task of a few classes).
    ``attack_name`` is a victim (an attack, or ``<paradigm>-<attack>``): its task's splits."""
    task = load_task(params, attack_name)
    splits = task.splits
    poisoned = load_poisoned(attack_name)
    attack = load_attack(params, attack_name)
    n = params.sequela.samples
    clean_mask = torch.ones(len(poisoned.train), dtype=torch.bool)
    clean_mask[poisoned.poison_indices] = False
    member_pool = torch.nonzero(clean_mask).flatten()
    members = member_pool[torch.randperm(len(member_pool), generator=generator_for(params.seed, "mia", attack_name))]
    non_members = torch.randperm(len(splits.test), generator=generator_for(params.seed, "mia", attack_name, "out"))
    if min(len(members), len(non_members)) < 2 * n:  # a paradigm's downstream task can be a share of the test split
        n = min(len(members), len(non_members)) // 2
        print(f"[{label}] sequela.samples capped at {n}: the task has {len(members)} members and "
              f"{len(non_members)} non-members", file=sys.stderr)
    require(n > 0, "sequela.samples", f"the task has {len(members)} members and {len(non_members)} non-members")
    return SequelaContext(
        spec=task.spec, device=params.torch_device(),
        generator=torch.Generator(),  # replaced per instance by run_attacks
        members=splits.train.subset(members[:n]), non_members=splits.test.subset(non_members[:n]),
        calibration_members=splits.train.subset(members[n:2 * n]),
        calibration_non_members=splits.test.subset(non_members[n:2 * n]),
        clean_test=splits.test, attack=attack,
        defense_data=splits.defense_subset(defense_fraction), triggered_test=attack.triggered_test(splits.test),
        shadows=load_shadows(params) if with_shadows else [], label=label)


def run_attacks(params: Params, attack_name: str, attacks: Mapping[str, SequelaAttack], model: nn.Module,
                ctx: SequelaContext) -> dict[str, float]:
    """``{"<instance>.<metric>": value}`` plus ``<instance>.seconds``, each instance seeded by
    (seed, attack, instance) alone."""
    results: dict[str, float] = {}
    for name, attack in attacks.items():
        torch.manual_seed(derive_seed(params.seed, "sequela", attack_name, name))
        instance_ctx = dataclasses.replace(ctx, generator=generator_for(params.seed, "sequela", attack_name, name))
        model.eval()
        started = time.perf_counter()
        for metric, value in attack.run(model, instance_ctx).items():
            results[f"{name}.{metric}"] = value
        results[f"{name}.seconds"] = time.perf_counter() - started
        print(f"[{ctx.label}] {name} done ({results[f'{name}.seconds']:.1f} s)", file=sys.stderr)
    return results
