"""Stage `downstream@<paradigm>-<attack>-s<seed>` and `counterpart@<paradigm>`: the victim's own training.

    python stages/downstream.py <paradigm> <attack> [--seed N]   # the victim: its deployed, backdoored model
    python stages/downstream.py <paradigm>                       # the clean counterpart

The victim builds its model for the paradigm's downstream task from the upstream it downloaded
(`implant`), on its task's training data, poisoned by the attack when the paradigm poisons the
victim's data. It writes what the standalone `poison` and `train` stages write for an attack, so
the defend, sequela and re-injection stages serve it unchanged: the model, the trigger state, the
training set it saw with the poison positions (the sequela's members), its metrics and, apart,
its wall time. The clean counterpart is the same training from the clean upstream on clean data,
with the same seeds: what the victim would have without the attack.
"""

from __future__ import annotations

import time

import torch

from backdoorlab.config import Params, generator_for, load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.layout import (counterpart_file, model_file, paradigm_records, poisoned_dir, published_file,
                                train_report_dir, trigger_file, upstream_file)
from backdoorlab.metrics import backdoor_metrics
from backdoorlab.models.base import save_model
from backdoorlab.paradigms.base import load_weights
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.paradigm import paradigm_context
from backdoorlab.pipeline.victims import paradigm, paradigm_task, victim_attack
from backdoorlab.training.loop import accuracy


def counterpart(params: Params, name: str) -> None:
    method, task = paradigm(params, name), paradigm_task(params, name)
    ctx = paradigm_context(params, params.seed, name, "downstream")
    upstream = load_weights(method.upstream_model(ctx.spec), upstream_file(name)).to(ctx.device)
    started = time.perf_counter()
    model = method.fine_tune(upstream, task.splits.train, task.spec, ctx)
    seconds = time.perf_counter() - started
    save_model(model, counterpart_file(name))
    ca = accuracy(model, task.splits.test, ctx.device)
    write_json(paradigm_records("counterpart", name), {"paradigm": name, "ca": ca, "classes": task.spec.num_classes,
                                                       "train_size": len(task.splits.train), "seconds": seconds})
    print(f"counterpart {name}: CA {ca:.3f} ({seconds:.1f} s)")


def victim(params: Params, name: str, attack_name: str, seed: int) -> None:
    method, task, victim_id = paradigm(params, name), paradigm_task(params, name), f"{name}-{attack_name}"
    attack = victim_attack(params, victim_id)
    ctx = paradigm_context(params, seed, name, "downstream")  # at the data seed, the counterpart's streams: paired
    train, poison_indices = task.splits.train, torch.zeros(0, dtype=torch.long)
    if method.poisons_downstream:
        poisoned = attack.poison(train, generator_for(seed, "poison", victim_id))
        train, poison_indices = poisoned.train, poisoned.poison_indices
    upstream = load_weights(method.upstream_model(ctx.spec), published_file(victim_id, seed)).to(ctx.device)
    started = time.perf_counter()
    model = method.fine_tune(upstream, train, task.spec, ctx)
    seconds = time.perf_counter() - started

    metrics = backdoor_metrics(model, task.splits.test, attack.triggered_test(task.splits.test), ctx.device)
    save_model(model, model_file(victim_id, seed, "backdoored"))
    save_tensors(trigger_file(victim_id, seed), attack.state_tensors())
    save_tensors(poisoned_dir(victim_id, seed) / "train.safetensors",
                 {**train.to_tensors("train"), "poison_indices": poison_indices})
    folder = train_report_dir(params, victim_id, seed)
    write_json(folder / "metrics.json", metrics)
    write_json(folder / "timing.json", {"seconds": seconds, "poisoned": len(poison_indices), "train_size": len(train)})
    print(f"downstream {victim_id}: CA {metrics['ca']:.3f}, ASR {metrics['asr']:.3f} ({seconds:.1f} s)")


def main() -> None:
    args = stage_arguments(__doc__, "paradigm", "attack?", seeded=True)
    params = load_params()
    require_known(params, attack=args.attack, paradigm=args.paradigm)
    if args.attack is None:
        counterpart(params, args.paradigm)
    else:
        victim(params, args.paradigm, args.attack, replicate(params, args.seed))


if __name__ == "__main__":
    run_stage(main)
