"""Why SFT's schedule wrecks the small model, seen only from the defender's side.

    python bench/sft_scale.py                      # the default run's BadNets victim, seed 0
    python bench/sft_scale.py --victim blended --fractions 0.05 0.2 --peaks 0.25 1 2.5

Needs the default run's prepared data and victim
(`dvc repro full/default/badnets/s0/dvc.yaml:train@badnets-s0`). For each defender
size and first-phase peak it runs SFT's phase one alone, then both phases, and prints what a
defender can measure: accuracy on its held-out validation images, loss on its own training images,
how far the weights moved (``|theta - theta0| / |theta0|``) and how far BatchNorm's running
variances moved (mean ``|log(var / var0)|`` over the BN layers), with the steps each phase took.
It also runs an LR range test on the defender's data (plain SGD, the LR growing exponentially from
1e-3 to 10 over 100 steps from the backdoored weights) and prints the LR at which the smoothed loss
first doubles: Smith's rule for a one-cycle schedule's peak, which SFT's schedule descends from. No
test-set number is read.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.config import generator_for, load_params
from backdoorlab.data.base import ImageSet
from backdoorlab.defenses.base import DefenseContext, total_steps
from backdoorlab.defenses.spec import build_defense
from backdoorlab.layout import model_file
from backdoorlab.models.base import load_model
from backdoorlab.pipeline.victims import load_task, regime_recipe
from backdoorlab.training.loop import accuracy, to_float


def mean_loss(model: nn.Module, data: ImageSet, device: torch.device) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(to_float(data.images, device))
        return F.cross_entropy(logits, data.labels.to(device)).item()


@torch.no_grad()
def weight_shift(model: nn.Module, start: nn.Module) -> float:
    moved = sum((p - q).pow(2).sum() for p, q in zip(model.parameters(), start.parameters()))
    norm = sum(q.pow(2).sum() for q in start.parameters())
    return math.sqrt(float(moved) / float(norm))


def bn_shift(model: nn.Module, start: nn.Module) -> float:
    """Mean |log(running_var / running_var0)| over BatchNorm layers: how far the statistics moved."""
    pairs = [(m, s) for m, s in zip(model.modules(), start.modules()) if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not pairs:
        return float("nan")
    return sum(float((m.running_var / s.running_var).log().abs().mean()) for m, s in pairs) / len(pairs)


def range_test(model: nn.Module, data: ImageSet, device: torch.device, weight_decay: float,
               steps: int = 100, low: float = 1e-3, high: float = 10.0) -> float:
    """The LR at which the smoothed training loss first exceeds twice its starting value."""
    model = copy.deepcopy(model).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=low, momentum=0.0, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(0)
    smooth = None
    for step in range(steps):
        lr = low * (high / low) ** (step / (steps - 1))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = torch.randint(len(data), (min(128, len(data)),), generator=generator)
        loss = F.cross_entropy(model(to_float(data.images[batch], device)), data.labels[batch].to(device))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        value = loss.item()
        smooth = value if smooth is None else 0.8 * smooth + 0.2 * value
        if step == 0:
            start = value
        if not math.isfinite(value) or smooth > 2 * start:
            return lr
    return high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--victim", default="badnets")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.05, 0.2])
    parser.add_argument("--peaks", type=float, nargs="+", default=[0.25, 1.0, 2.5])
    args = parser.parse_args()
    params = load_params()
    task = load_task(params, args.victim)
    device = params.torch_device()
    backdoored = load_model(task.spec, model_file(args.victim, args.seed, "backdoored")).to(device)
    base = build_defense("sft", params.instance("defenses", "sft")).defense
    print("| defender images (fit + val) | peak | phase-1 steps | phase-2 steps | val acc before | after phase 1 | "
          "after both | fit loss after phase 1 | after both | weight shift (phase 1) | BN var shift (phase 1) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for fraction in args.fractions:
        defender = task.splits.defender(fraction, params.data.validation_fraction)
        before = accuracy(backdoored, defender.validation, device)
        ctx = DefenseContext(clean=defender.fit, validation=defender.validation, spec=task.spec, device=device,
                             generator=generator_for(args.seed, "sft_scale"), augment=regime_recipe(params, None).augment,
                             label="sft_scale")
        for peak in args.peaks:
            config = dataclasses.replace(base.config, peak_lr_1=peak)
            steps = [total_steps(e, len(defender.fit), config.batch_size) for e in (config.epochs_1, config.epochs_2)]
            rows = []
            for epochs_2 in (0, config.epochs_2):
                defense = type(base)(dataclasses.replace(config, epochs_2=epochs_2))
                run_ctx = dataclasses.replace(ctx, generator=torch.Generator().manual_seed(args.seed))
                model = defense.apply(copy.deepcopy(backdoored), run_ctx).model
                rows.append((accuracy(model, defender.validation, device), mean_loss(model, defender.fit, device),
                             weight_shift(model, backdoored), bn_shift(model, backdoored)))
            (acc1, loss1, shift1, bn1), (acc2, loss2, _, _) = rows
            print(f"| {len(defender.fit)} + {len(defender.validation)} | {peak:g} | {steps[0]} | {steps[1]} | "
                  f"{100 * before:.1f} | {100 * acc1:.1f} | {100 * acc2:.1f} | {loss1:.2f} | {loss2:.2f} | "
                  f"{shift1:.2f} | {bn1:.2f} |", flush=True)
        divergence = range_test(backdoored, defender.fit, device, base.config.weight_decay)
        print(f"LR range test on {len(defender.fit)} defender images: the loss doubles at LR {divergence:.2g}")


if __name__ == "__main__":
    main()
