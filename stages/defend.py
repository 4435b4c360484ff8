"""Stage `defend@<victim>-<defense>-s<seed>`: apply one defense instance and evaluate the result.

    python stages/defend.py <attack> <defense> [--seed N] [--clean-fraction F]

``<attack>`` is a victim: an attack's name, or ``<paradigm>-<attack>`` for a transfer or encoder
paradigm's model, whose task (classes, data) the stage reads through ``pipeline.victims.load_task``.
The seed is the replicate: the victim's model of that seed, and the defense's own randomness.
``--clean-fraction`` gives the defender another share of the training set than the instance's own:
a fidelity-map cell (`full/fidelity/dvc.yaml`), named ``<defense>_<percent>pct``, whose model and
record sit beside the default cells' under that name (its randomness is the instance's, so the
map's sizes differ only by the data).

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
from backdoorlab.defenses.base import DefenseContext, DefenseOutcome
from backdoorlab.defenses.calibration import calibrate
from backdoorlab.defenses.spec import DefenseSpec, build_defense
from backdoorlab.io import write_json
from backdoorlab.layout import cell_dir, fidelity_cell_dir, model_file, sized_instance
from backdoorlab.metrics import backdoor_metrics, defense_effectiveness_rating, retained_accuracy
from backdoorlab.models.base import load_model, save_model
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.victims import Task, load_task, regime_recipe, triggered_test
from backdoorlab.settings import require
from backdoorlab.training.loop import accuracy


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
                            "search": spec.calibration.search, "floor": spec.calibration.floor,
                            "weakest": spec.calibration.candidates[0][0], "chosen": result.chosen,
                            "within_budget": result.within_budget, "trials": trials}


def strength_of(spec: DefenseSpec) -> dict[str, Any] | None:
    """The instance's value of its method's strength knob (the report draws fixed instances beside
    a calibrated one's search), or None for a method without one."""
    strength = spec.defense.strength
    return None if strength is None else {"knob": strength.knob, "value": getattr(spec.defense.config, strength.knob)}


def defend(params: Params, attack_name: str, defense_name: str, seed: int, task: Task,
           fraction: float | None = None) -> dict[str, Any]:
    """The cell's record; its defended model is saved as ``name`` (the instance's, or with
    ``fraction`` its :func:`sized_instance` name)."""
    spec = build_defense(defense_name, params.instance("defenses", defense_name))
    splits, blueprint = task.splits, task.spec
    triggered = triggered_test(params, attack_name, seed, splits.test)  # for the report only
    device = params.torch_device()
    clean_fraction = params.clean_fraction(defense_name) if fraction is None else fraction
    name = defense_name if fraction is None else sized_instance(defense_name, fraction)
    defender = splits.defender(clean_fraction, params.data.validation_fraction)
    model = load_model(blueprint, model_file(attack_name, seed, "backdoored")).to(device)
    val_before = accuracy(model, defender.validation, device)

    torch.manual_seed(derive_seed(seed, "defend", attack_name, defense_name))
    ctx = DefenseContext(clean=defender.fit, validation=defender.validation, spec=blueprint, device=device,
                         generator=generator_for(seed, "defend", attack_name, defense_name),
                         augment=regime_recipe(params, None).augment, label=f"{spec.name} on {attack_name}")

    def evaluate(m: nn.Module) -> dict[str, float]:
        return backdoor_metrics(m, splits.test, triggered, device)

    before = evaluate(model)  # the undefended model (for DER), before the defense touches it
    started = time.perf_counter()
    outcome, calibration = run_defense(spec, model, ctx, val_before, evaluate)
    seconds = time.perf_counter() - started

    after = evaluate(outcome.model)
    val_after = accuracy(outcome.model, defender.validation, device)
    retained = retained_accuracy(val_before, val_after, blueprint.num_classes)
    save_model(outcome.model, model_file(attack_name, seed, name))
    return {
        "attack": attack_name, "defense": name, "seed": seed, "method": spec.method,
        "clean_fraction": clean_fraction,
        "fit_samples": len(defender.fit), "validation_samples": len(defender.validation),
        **after, "der": defense_effectiveness_rating(before, after),
        "val_acc_before": val_before, "val_acc": val_after, "val_retained": retained,
        "collapsed": retained < params.utility.collapse_floor,
        "strength": strength_of(spec), "calibration": calibration, "seconds": seconds, "notes": outcome.notes,
    }


def main() -> None:
    args = stage_arguments(__doc__, "attack", "defense", seeded=True, sized=True)
    params = load_params()
    seed = replicate(params, args.seed)
    require_known(params, attack=args.attack, defense=args.defense)
    fraction = args.clean_fraction
    if fraction is not None:
        require(0 < fraction <= 1, "--clean-fraction", f"must be in (0, 1] (a share of the training set), got {fraction}")
    record = defend(params, args.attack, args.defense, seed, load_task(params, args.attack), fraction)
    folder = (cell_dir(params, args.attack, args.defense, seed) if fraction is None
              else fidelity_cell_dir(args.attack, record["defense"], seed))
    write_json(folder / "defense.json", record)
    chosen = (f", {record['calibration']['knob']}={record['calibration']['chosen']:g}"
              if record["calibration"] else "")
    print(f"{record['defense']} on {args.attack} (seed {seed}, {record['fit_samples']} + "
          f"{record['validation_samples']} images): CA {record['ca']:.3f}, ASR {record['asr']:.3f}, "
          f"validation acc {record['val_acc_before']:.3f} -> {record['val_acc']:.3f}{chosen}"
          f"{' (COLLAPSED)' if record['collapsed'] else ''} ({record['seconds']:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
