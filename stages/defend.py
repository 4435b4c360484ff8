"""Stage `defend@<attack>-<defense>`: apply one defense instance and evaluate the result.

    python stages/defend.py <attack> <defense>

The defense sees only the backdoored model and the defender's clean subset; the evaluation
(CA, ASR, RA, DER against the undefended model) and the defense's wall time go to one small JSON.
"""

from __future__ import annotations

import sys
import time

import torch

from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.defenses import DefenseContext
from backdoorlab.io import read_json, write_json
from backdoorlab.metrics import backdoor_metrics, defense_effectiveness_rating
from backdoorlab.models import load_model, save_model
from backdoorlab.workspace import (cell_dir, load_poisoned, load_splits, model_file, model_spec,
                                   run_stage, train_report_dir)


def main() -> None:
    params = load_params()
    attack_name, defense_name = sys.argv[1], sys.argv[2]
    attack, spec = params.attacks[attack_name], params.defenses[defense_name]
    device = params.torch_device()
    splits = load_splits()
    model_spec_ = model_spec(params)
    clean = splits.defense_subset(params.clean_fraction(defense_name))

    model = load_model(model_spec_, model_file(attack_name, "backdoored")).to(device)
    torch.manual_seed(derive_seed(params.seed, "defend", attack_name, defense_name))
    ctx = DefenseContext(clean=clean, spec=model_spec_, device=device,
                         generator=generator_for(params.seed, "defend", attack_name, defense_name),
                         augment=params.train.augment, label=f"{spec.name} on {attack_name}")
    started = time.perf_counter()
    outcome = spec.defense.apply(model, ctx)
    seconds = time.perf_counter() - started

    triggered = load_poisoned(attack_name).triggered_test
    after = backdoor_metrics(outcome.model, splits.test, triggered, attack.target, device)
    before = read_json(train_report_dir(attack_name) / "metrics.json")
    save_model(outcome.model, model_file(attack_name, defense_name))
    write_json(cell_dir(attack_name, defense_name) / "defense.json", {
        "attack": attack_name, "defense": defense_name, "method": spec.method,
        "clean_fraction": params.clean_fraction(defense_name), "clean_samples": len(clean),
        **after, "der": defense_effectiveness_rating(before, after), "seconds": seconds,
        "notes": outcome.notes,
    })
    print(f"{spec.name} on {attack_name}: CA {before['ca']:.3f} -> {after['ca']:.3f}, "
          f"ASR {before['asr']:.3f} -> {after['asr']:.3f} ({seconds:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
