"""Stage `defend@<attack>-<defense>`: apply one defense instance and evaluate the result.

    python stages/defend.py <attack> <defense>

``<attack>`` is a victim: an attack's name, or ``<paradigm>-<attack>`` for a transfer or encoder
paradigm's model, whose task (classes, data) the stage reads through ``workspace.load_task``.

The defense sees only the backdoored model and the defender's clean data, split into a part it
trains on and a held-out validation part; a calibrated instance keeps the strongest setting of its
knob that the validation part allows. Then, for the report only, the stage measures CA, ASR, RA
and DER on the test sets, the defender's validation accuracy before and after, and flags the cell
``collapsed`` when it kept less than ``utility.collapse_floor`` of the undefended model's
accuracy above chance. Wall time goes into the record too (only the report reads it).
"""

from __future__ import annotations

import time
from typing import Any, Callable

import torch
from torch import nn

from backdoorlab.config import Params, derive_seed, generator_for, load_params
from backdoorlab.defenses import DefenseContext, DefenseOutcome, DefenseSpec
from backdoorlab.defenses.calibration import calibrate
from backdoorlab.io import write_json
from backdoorlab.metrics import backdoor_metrics, defense_effectiveness_rating, retained_accuracy
from backdoorlab.models import load_model, save_model
from backdoorlab.training.loop import accuracy
from backdoorlab.workspace import (Task, cell_dir, load_task, model_file, require_known, run_stage, stage_arguments,
                                   triggered_test)


def run_defense(spec: DefenseSpec, model: nn.Module, ctx: DefenseContext, val_before: float,
                evaluate: Callable[[nn.Module], dict[str, float]]) -> tuple[DefenseOutcome, dict[str, Any] | None]:
    """Apply a fixed instance, or calibrate one; returns the outcome and the calibration record.

    ``evaluate(model)`` gives test metrics for the report's trade-off figure; the calibration's
    choice never depends on it."""
    if spec.calibration is None:
        return spec.defense.apply(model, ctx), None
    tested: dict[float, dict[str, float]] = {}
    result = calibrate(spec.calibration, model, ctx, val_before,
                       lambda m: accuracy(m, ctx.validation, ctx.device),
                       observe=lambda value, m: tested.__setitem__(value, evaluate(m)))
    trials = [{**trial, **{k: tested.get(trial["value"], {}).get(k) for k in ("ca", "asr")}}
              for trial in result.evaluated]
    return result.outcome, {"knob": spec.calibration.knob, "budget": spec.calibration.budget,
                            "search": spec.calibration.search, "chosen": result.chosen,
                            "within_budget": result.within_budget, "trials": trials}


def defend(params: Params, attack_name: str, defense_name: str, task: Task) -> dict[str, Any]:
    spec, splits, blueprint = params.defenses[defense_name], task.splits, task.spec
    triggered = triggered_test(params, attack_name, splits.test)  # for the report only
    device = params.torch_device()
    defender = splits.defender(params.clean_fraction(defense_name), params.data.validation_fraction)
    model = load_model(blueprint, model_file(attack_name, "backdoored")).to(device)
    val_before = accuracy(model, defender.validation, device)

    torch.manual_seed(derive_seed(params.seed, "defend", attack_name, defense_name))
    ctx = DefenseContext(clean=defender.fit, validation=defender.validation, spec=blueprint, device=device,
                         generator=generator_for(params.seed, "defend", attack_name, defense_name),
                         augment=params.train.augment, label=f"{spec.name} on {attack_name}")

    def evaluate(m: nn.Module) -> dict[str, float]:
        return backdoor_metrics(m, splits.test, triggered, device)

    before = evaluate(model)  # the undefended model (for DER), before the defense touches it
    started = time.perf_counter()
    outcome, calibration = run_defense(spec, model, ctx, val_before, evaluate)
    seconds = time.perf_counter() - started

    after = evaluate(outcome.model)
    val_after = accuracy(outcome.model, defender.validation, device)
    retained = retained_accuracy(val_before, val_after, blueprint.num_classes)
    save_model(outcome.model, model_file(attack_name, defense_name))
    return {
        "attack": attack_name, "defense": defense_name, "method": spec.method,
        "clean_fraction": params.clean_fraction(defense_name),
        "fit_samples": len(defender.fit), "validation_samples": len(defender.validation),
        **after, "der": defense_effectiveness_rating(before, after),
        "val_acc_before": val_before, "val_acc": val_after, "val_retained": retained,
        "collapsed": retained < params.utility.collapse_floor,
        "calibration": calibration, "seconds": seconds, "notes": outcome.notes,
    }


def main() -> None:
    args = stage_arguments(__doc__, "attack", "defense")
    params = load_params()
    require_known(params, attack=args.attack, defense=args.defense)
    record = defend(params, args.attack, args.defense, load_task(params, args.attack))
    write_json(cell_dir(params, args.attack, args.defense) / "defense.json", record)
    chosen = (f", {record['calibration']['knob']}={record['calibration']['chosen']:g}"
              if record["calibration"] else "")
    print(f"{args.defense} on {args.attack}: CA {record['ca']:.3f}, ASR {record['asr']:.3f}, "
          f"validation acc {record['val_acc_before']:.3f} -> {record['val_acc']:.3f}{chosen}"
          f"{' (COLLAPSED)' if record['collapsed'] else ''} ({record['seconds']:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
