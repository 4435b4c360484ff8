"""Stage `retrain@<attack>-<cleanser>`: a training-time defense, from the poisoned training set.

    python stages/retrain.py <attack> <cleanser>

The defender holds the training set as the victim received it (poisoned samples unflagged) and
trains the model itself: Activation Clustering and Spectral Signatures flag samples from the
defender's plainly trained model (the backdoored one) and retrain without them; ABL trains its own
model. It holds out the same validation images as the post-training defenders (clean, removed
from what it trains on) to judge the result, so the cell's record has the same fields as a
`defend` cell's, and the sequela and report stages treat it like one. For the report only: CA,
ASR, RA, DER on the test sets, and the detection's precision and recall against the true poison
positions, which the defense never sees. Wall time goes into the record (only the report reads it).
"""

from __future__ import annotations

import time
from typing import Any

import torch

from backdoorlab.cleansing import CleansingContext, Detection
from backdoorlab.config import Params, derive_seed, generator_for, load_params
from backdoorlab.io import write_json
from backdoorlab.metrics import backdoor_metrics, defense_effectiveness_rating, retained_accuracy
from backdoorlab.models import load_model, save_model
from backdoorlab.training.loop import accuracy
from backdoorlab.workspace import (cell_dir, load_poisoned, load_splits, model_file, model_spec, require_known,
                                   run_stage, stage_arguments, triggered_test)


def detection_scores(detection: Detection, poison: torch.Tensor, size: int) -> dict[str, float]:
    """Precision and recall of the flagged positions against the true poison positions."""
    flagged = torch.zeros(size, dtype=torch.bool)
    flagged[detection.flagged] = True
    hits = int(flagged[poison].sum())
    return {"flagged": int(flagged.sum()), "precision": hits / max(int(flagged.sum()), 1),
            "recall": hits / max(len(poison), 1)}


def retrain(params: Params, attack_name: str, name: str) -> dict[str, Any]:
    cleanser, splits, spec, device = params.cleansers[name], load_splits(), model_spec(params), params.torch_device()
    poisoned = load_poisoned(attack_name)
    held_out = splits.defender(params.data.defense_fraction, params.data.validation_fraction)
    validation_positions = splits.defender_positions(params.data.defense_fraction)[:len(held_out.validation)]
    keep = torch.ones(len(poisoned.train), dtype=torch.bool)
    keep[validation_positions] = False
    kept = torch.nonzero(keep).flatten()
    remap = torch.full((len(keep),), -1, dtype=torch.long)
    remap[kept] = torch.arange(len(kept))
    poison = remap[poisoned.poison_indices]
    poison = poison[poison >= 0]  # positions in what the defender trains on

    trained = load_model(spec, model_file(attack_name, "backdoored")).to(device)
    triggered = triggered_test(params, attack_name, splits.test)
    before = backdoor_metrics(trained, splits.test, triggered, device)
    val_before = accuracy(trained, held_out.validation, device)
    torch.manual_seed(derive_seed(params.seed, "retrain", attack_name, name))
    ctx = CleansingContext(train=poisoned.train.subset(kept), spec=spec, recipe=params.train, device=device,
                           generator=generator_for(params.seed, "retrain", attack_name, name),
                           init_seed=derive_seed(params.seed, "init", attack_name, name), label=f"{name} on {attack_name}")
    started = time.perf_counter()
    outcome = cleanser.defend(trained, ctx)
    seconds = time.perf_counter() - started

    after = backdoor_metrics(outcome.model, splits.test, triggered, device)
    val_after = accuracy(outcome.model, held_out.validation, device)
    retained = retained_accuracy(val_before, val_after, spec.num_classes)
    save_model(outcome.model, model_file(attack_name, name))
    return {
        "attack": attack_name, "defense": name, "method": cleanser.registry_name, "clean_fraction": 1.0,
        "fit_samples": len(kept), "validation_samples": len(held_out.validation),
        **after, "der": defense_effectiveness_rating(before, after),
        "val_acc_before": val_before, "val_acc": val_after, "val_retained": retained,
        "collapsed": retained < params.utility.collapse_floor, "calibration": None, "seconds": seconds,
        "notes": {**outcome.detection.notes, **detection_scores(outcome.detection, poison, len(kept))},
    }


def main() -> None:
    args = stage_arguments(__doc__, "attack", "cleanser")
    params = load_params()
    require_known(params, attack=args.attack, cleanser=args.cleanser)
    record = retrain(params, args.attack, args.cleanser)
    write_json(cell_dir(params, args.attack, args.cleanser) / "defense.json", record)
    notes = record["notes"]
    print(f"{args.cleanser} on {args.attack}: CA {record['ca']:.3f}, ASR {record['asr']:.3f}, flagged "
          f"{notes['flagged']} (precision {notes['precision']:.2f}, recall {notes['recall']:.2f})"
          f"{' (COLLAPSED)' if record['collapsed'] else ''} ({record['seconds']:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
