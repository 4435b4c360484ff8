"""Gather every cell's JSON into flat records: one per (attack, defense), deltas included."""

from __future__ import annotations

from typing import Any

from backdoorlab.config import Params, Scope
from backdoorlab.io import read_json
from backdoorlab.workspace import attack_of, baseline_dir, cell_dir, paradigm_of, paradigm_records, train_report_dir

Record = dict[str, Any]
# {attack: {defense: {"<instance>.<metric>": value}}}, every metric of every grid.main cell
SequelaResults = dict[str, dict[str, dict[str, float]]]


def _metrics_only(raw: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in raw.items() if not key.endswith(".seconds")}


def sequela_results(params: Params, scope: Scope) -> SequelaResults:
    return {attack: {defense: _metrics_only(read_json(cell_dir(params, attack, defense) / "sequela.json"))
                     for defense in params.grid.main_cells(scope)}
            for attack in params.grid.attack_list(scope)}


def reinject_baselines(params: Params, scope: Scope) -> dict[str, dict[str, float]]:
    """``{attack: {"<instance>.<metric>": value}}``: re-injection on the model trained without poison."""
    return {attack: _metrics_only(read_json(baseline_dir(params, attack) / "reinject.json"))
            for attack in params.grid.attack_list(scope)}


def is_headline(params: Params, key: str) -> bool:
    """Whether the sequela number ``<instance>.<metric>`` goes into reports/summary.json."""
    instance, _, metric = key.partition(".")
    attack = params.sequela.attacks.get(instance)
    return attack is not None and attack.headline(metric)


def collect_cells(params: Params, sequela: SequelaResults, scope: Scope) -> dict[str, Record]:
    """``{"<attack>-<defense>": record}`` with defense metrics and, for main defenses, the headline
    sequela numbers as ``sequela.<metric>`` plus ``delta.<metric>`` = defended - undefended."""
    records: dict[str, Record] = {}
    for attack in params.grid.attack_list(scope):
        baseline = sequela[attack]["none"]
        for defense in params.grid.cells(scope):
            cell = read_json(cell_dir(params, attack, defense) / "defense.json")
            record: Record = {k: cell[k] for k in ("attack", "defense", "method", "clean_fraction",
                                                    "ca", "asr", "ra", "der", "val_acc_before", "val_acc",
                                                    "val_retained", "collapsed", "seconds")}
            calibration = cell.get("calibration")
            if calibration:
                record["calibrated"] = f"{calibration['knob']}={calibration['chosen']:g}"
                record["within_budget"] = calibration["within_budget"]
            for key, value in cell.get("notes", {}).items():
                record[f"note.{key}"] = value
            for key, value in sequela[attack].get(defense, {}).items():
                if is_headline(params, key):
                    record[f"sequela.{key}"] = value
                    record[f"delta.{key}"] = value - baseline[key]
            records[f"{attack}-{defense}"] = record
    return records


def baseline_records(params: Params, baselines: dict[str, dict[str, float]]) -> dict[str, Record]:
    """``{"<attack>-clean_model": record}``: the headline re-injection numbers of the clean model."""
    return {f"{attack}-clean_model": {"attack": attack, "defense": "clean_model",
                                      **{f"sequela.{k}": v for k, v in values.items() if is_headline(params, k)}}
            for attack, values in baselines.items()}


def headline(params: Params, records: dict[str, Record], scope: Scope) -> dict[str, dict[str, dict[str, Any]]]:
    """``{attack: {defense: {ca, asr, der, collapsed}}}``: the compact file ``dvc exp show`` and
    ``dvc metrics diff`` read (columns such as ``badnets.sft.asr``)."""
    return {attack: {defense: {k: (round(v, 4) if isinstance(v, float) else v)
                               for k, v in records[f"{attack}-{defense}"].items()
                               if k in ("ca", "asr", "der", "collapsed")}
                     for defense in params.grid.cells(scope)}
            for attack in params.grid.attack_list(scope)}


def calibration_trials(params: Params, scope: Scope) -> dict[str, dict[str, dict[str, Any]]]:
    """``{attack: {instance: calibration record}}`` for every calibrated instance in the grid."""
    return {attack: {defense: read_json(cell_dir(params, attack, defense) / "defense.json")["calibration"]
                     for defense in params.grid.cells(scope)
                     if defense in params.defenses and params.defenses[defense].calibration}
            for attack in params.grid.attack_list(scope)}


def training_times(params: Params, scope: Scope) -> dict[str, float]:
    """Wall time of each backdoored model's training: the yardstick of a defense's cost."""
    return {attack: read_json(train_report_dir(params, attack) / "timing.json")["seconds"]
            for attack in params.grid.attack_list(scope)}


def paradigm_rows(params: Params) -> list[Record]:
    """Per paradigm victim: the clean counterpart's CA, the implant stage's record (what the
    attacker measured on the upstream it published), the deployed model's CA / ASR before defense."""
    rows = []
    for victim in params.grid.victims():
        paradigm = paradigm_of(params, victim)
        implant = read_json(paradigm_records("implant", victim))
        trained = read_json(train_report_dir(params, victim) / "metrics.json")
        counterpart = read_json(paradigm_records("counterpart", paradigm))
        rows.append({"victim": victim, "paradigm": paradigm, "attack": attack_of(params, victim),
                     "clean counterpart ca": counterpart["ca"], "victim ca": trained["ca"],
                     "ca cost": counterpart["ca"] - trained["ca"], "victim asr": trained["asr"],
                     **{f"upstream {k}": v for k, v in implant.items() if k not in ("victim", "backdoored_upstream", "seconds")}})
    return rows
