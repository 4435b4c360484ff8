"""Stage `retrain@<attack>-<cleanser>-s<seed>`: a training-time defense, from the poisoned training set.

    python stages/retrain.py <attack> <cleanser> [--seed N]

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

from backdoorlab.cleansing.base import CleansingContext, Detection, build_cleanser
from backdoorlab.config import Params, derive_seed, generator_for, load_params
from backdoorlab.io import write_json
from backdoorlab.layout import cell_dir, model_file
from backdoorlab.metrics import backdoor_metrics, defense_effectiveness_rating, retained_accuracy
from backdoorlab.models.base import load_model, save_model
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.victims import load_poisoned, load_splits, model_spec, regime_recipe, triggered_test
from backdoorlab.training.loop import accuracy


def detection_scores(detection: Detection, poison: torch.Tensor, size: int) -> dict[str, float]:
    """Precision and recall of the flagged positions against the true poison positions."""
    flagged = torch.zeros(size, dtype=torch.bool)
    flagged[detection.flagged] = True
    hits = int(flagged[poison].sum())
    return {"flagged": int(flagged.sum()), "precision": hits / max(int(flagged.sum()), 1),
            "recall": hits / max(len(poison), 1)}


def retrain(params: Params, attack_name: str, name: str, seed: int) -> dict[str, Any]:
    cleanser = build_cleanser(name, params.instance("cleansers", name))
    splits, spec, device = load_splits(), model_spec(params), params.torch_device()
    poisoned = load_poisoned(attack_name, seed)
    validation = splits.validation_positions(params.data.defense_fraction, params.data.validation_fraction)
    kept = torch.nonzero(~torch.isin(torch.arange(len(poisoned.train)), validation)).flatten()
    remap = torch.full((len(poisoned.train),), -1, dtype=torch.long)
    remap[kept] = torch.arange(len(kept))
    poison = remap[poisoned.poison_indices]
    poison = poison[poison >= 0]  # positions in what the defender trains on
    held_out = splits.train.subset(validation)
    trained = load_model(spec, model_file(attack_name, seed, "backdoored")).to(device)
    triggered = triggered_test(params, attack_name, seed, splits.test)
    before = backdoor_metrics(trained, splits.test, triggered, device)
    val_before = accuracy(trained, held_out, device)
    torch.manual_seed(derive_seed(seed, "retrain", attack_name, name))
    ctx = CleansingContext(train=poisoned.train.subset(kept), spec=spec, recipe=regime_recipe(params, None), device=device,
                           generator=generator_for(seed, "retrain", attack_name, name),
                           init_seed=derive_seed(seed, "init", attack_name, name), label=f"{name} on {attack_name}")
    started = time.perf_counter()
    outcome = cleanser.defend(trained, ctx)
    seconds = time.perf_counter() - started

    after = backdoor_metrics(outcome.model, splits.test, triggered, device)
    val_after = accuracy(outcome.model, held_out, device)
    retained = retained_accuracy(val_before, val_after, spec.num_classes)
    save_model(outcome.model, model_file(attack_name, seed, name))
    return {
        "attack": attack_name, "defense": name, "seed": seed, "method": cleanser.registry_name, "clean_fraction": 1.0,
        "fit_samples": len(kept), "validation_samples": len(held_out),
        **after, "der": defense_effectiveness_rating(before, after),
        "val_acc_before": val_before, "val_acc": val_after, "val_retained": retained,
        "collapsed": retained < params.utility.collapse_floor, "calibration": None, "seconds": seconds,
        "notes": {**outcome.detection.notes, **detection_scores(outcome.detection, poison, len(kept))},
    }


def main() -> None:
    args = stage_arguments(__doc__, "attack", "cleanser", seeded=True)
    params = load_params()
    seed = replicate(params, args.seed)
    require_known(params, attack=args.attack, cleanser=args.cleanser)
    record = retrain(params, args.attack, args.cleanser, seed)
    write_json(cell_dir(params, args.attack, args.cleanser, seed) / "defense.json", record)
    notes = record["notes"]
    print(f"{args.cleanser} on {args.attack}: CA {record['ca']:.3f}, ASR {record['asr']:.3f}, flagged "
          f"{notes['flagged']} (precision {notes['precision']:.2f}, recall {notes['recall']:.2f})"
          f"{' (COLLAPSED)' if record['collapsed'] else ''} ({record['seconds']:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
