"""Gather every cell's JSON over its seeds into flat records: one per (attack, defense).

A cell's record holds the mean over its seeds of every number (``ca``, ``asr``, ...), and for the
headline ones their spread (``ca_sd``), the ends of their interval (``ca_lo``, ``ca_hi``) and the
per-seed values (``ca_seeds``), the number of seeds (``n_seeds``) and the verdict
(:mod:`backdoorlab.reporting.verdicts`). A seed a cell should have and has not is an error naming
the cell and its stage: nothing is averaged over what happens to be there.
"""

from __future__ import annotations

from pathlib import Path
from statistics import mean
from typing import Any

from backdoorlab.config import Params, Scope
from backdoorlab.errors import DataError
from backdoorlab.io import read_json
from backdoorlab.layout import (attack_of, baseline_dir, cell_dir, implant_record, paradigm_of, paradigm_records,
                                train_report_dir)
from backdoorlab.reporting.verdicts import interval, verdict
from backdoorlab.sequela.base import SequelaSettings

Record = dict[str, Any]
# {attack: {defense: {"<instance>.<metric>": mean over seeds}}}, every metric of every main cell
SequelaResults = dict[str, dict[str, dict[str, float]]]
# {attack: {defense: {seed: {"<instance>.<metric>": value}}}}
SequelaBySeed = dict[str, dict[str, dict[int, dict[str, float]]]]
INTERVALS = ("ca", "asr", "ra", "der", "val_acc_before", "val_acc", "val_retained")


def seeds(params: Params, attack: str, defense: str | None = None) -> list[int]:
    return params.grid.seeds_of(attack, defense)


def read_record(path: Path, stage: str) -> dict[str, Any]:
    """A stage's record; one line naming the missing seed's stage when it is not there."""
    if not path.is_file():
        raise DataError(f"{path}: missing (run `dvc repro {stage}`, after `make dag` if grid.* changed: the "
                        "cells are generated); the report averages a cell only over every seed it is configured with")
    return read_json(path)


def _metrics_only(raw: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in raw.items() if not key.endswith(".seconds")}


def mean_over_seeds(by_seed: dict[int, dict[str, float]]) -> dict[str, float]:
    keys = next(iter(by_seed.values())).keys()
    return {key: mean(values[key] for values in by_seed.values()) for key in keys}


def sequela_by_seed(params: Params, scope: Scope) -> SequelaBySeed:
    return {attack: {defense: {seed: _metrics_only(read_record(cell_dir(params, attack, defense, seed) / "sequela.json",
                                                               f"sequela@{attack}-{defense}-s{seed}"))
                               for seed in seeds(params, attack, defense)}
                     for defense in params.grid.main_cells(scope)}
            for attack in params.grid.attack_list(scope)}


def sequela_means(by_seed: SequelaBySeed) -> SequelaResults:
    return {attack: {defense: mean_over_seeds(values) for defense, values in cells.items()}
            for attack, cells in by_seed.items()}


def sequela_deltas(by_seed: SequelaBySeed) -> SequelaResults:
    """Each cell's change against ``none``, paired within each of its seeds, then averaged."""
    return {attack: {defense: mean_over_seeds({seed: {key: value - cells["none"][seed][key] for key, value in values.items()}
                                               for seed, values in by_defense.items()})
                     for defense, by_defense in cells.items()}
            for attack, cells in by_seed.items()}


def reinject_baselines(params: Params, scope: Scope) -> dict[str, dict[str, float]]:
    """``{attack: {"<instance>.<metric>": mean over seeds}}``: re-injection on the model trained without poison."""
    return {attack: mean_over_seeds({seed: _metrics_only(read_record(baseline_dir(params, attack, seed) / "reinject.json",
                                                                     f"reinject_baseline@{attack}-s{seed}"))
                                     for seed in seeds(params, attack)})
            for attack in params.grid.attack_list(scope)}


def is_headline(settings: SequelaSettings, key: str) -> bool:
    """Whether the sequela number ``<instance>.<metric>`` goes into reports/summary.json."""
    instance, _, metric = key.partition(".")
    attack = settings.attacks.get(instance)
    return attack is not None and attack.headline(metric)


def defense_records(params: Params, attack: str, defense: str) -> dict[int, dict[str, Any]]:
    stage = "retrain" if defense in params.section("cleansers") else "defend"
    return {seed: read_record(cell_dir(params, attack, defense, seed) / "defense.json", f"{stage}@{attack}-{defense}-s{seed}")
            for seed in seeds(params, attack, defense)}


def aggregate(params: Params, cells: dict[int, dict[str, Any]]) -> Record:
    """One cell's record over its seeds (module docstring)."""
    first = next(iter(cells.values()))
    record: Record = {k: first.get(k) for k in ("attack", "defense", "method", "clean_fraction", "strength")}
    record["n_seeds"] = len(cells)
    record["seeds"] = ";".join(str(s) for s in cells)
    for key in INTERVALS:
        span = interval([cell[key] for cell in cells.values()], params.report.confidence)
        record.update({key: span.mean, f"{key}_sd": span.sd, f"{key}_lo": span.lo, f"{key}_hi": span.hi,
                       f"{key}_half": span.half, f"{key}_seeds": ";".join(f"{v:.4f}" for v in span.values)})
    flags = [bool(cell["collapsed"]) for cell in cells.values()]
    record["collapsed_seeds"] = sum(flags)
    record["collapsed"] = 2 * sum(flags) >= len(flags)
    record["verdict"] = verdict(interval([c["asr"] for c in cells.values()], params.report.confidence), flags,
                                params.report.asr_removed)
    record["seconds"] = mean(cell["seconds"] for cell in cells.values())
    calibrations = [cell.get("calibration") for cell in cells.values()]
    if all(calibrations):
        record["calibrated"] = f"{calibrations[0]['knob']}=" + ",".join(f"{c['chosen']:g}" for c in calibrations)
        record["within_budget"] = sum(bool(c["within_budget"]) for c in calibrations) / len(calibrations)
    for key in first.get("notes", {}):
        values = [cell["notes"][key] for cell in cells.values()]
        record[f"note.{key}"] = mean(values) if all(isinstance(v, (int, float)) for v in values) else values[0]
    return record


def collect_cells(params: Params, settings: SequelaSettings, sequela: SequelaResults, deltas: SequelaResults,
                  scope: Scope) -> tuple[dict[str, Record], list[Record]]:
    """``{"<attack>-<defense>": record}`` over seeds, with, for main defenses, the headline sequela
    numbers as ``sequela.<metric>`` plus ``delta.<metric>`` = defended - undefended (means over
    seeds of the per-seed differences); and every seed's own record, for ``cells_by_seed.csv``."""
    records: dict[str, Record] = {}
    per_seed: list[Record] = []
    for attack in params.grid.attack_list(scope):
        for defense in params.grid.cells(scope):
            cells = defense_records(params, attack, defense)
            per_seed += [{"attack": attack, "defense": defense, "seed": seed,
                          **{k: v for k, v in cell.items() if isinstance(v, (int, float, str, bool)) and k not in
                             ("attack", "defense", "seed")}} for seed, cell in cells.items()]
            record = aggregate(params, cells)
            for key, value in sequela[attack].get(defense, {}).items():
                if is_headline(settings, key):
                    record[f"sequela.{key}"] = value
                    record[f"delta.{key}"] = deltas[attack][defense][key]
            records[f"{attack}-{defense}"] = record
    return records, per_seed


def baseline_records(settings: SequelaSettings, baselines: dict[str, dict[str, float]]) -> dict[str, Record]:
    """``{"<attack>-clean_model": record}``: the headline re-injection numbers of the clean model."""
    return {f"{attack}-clean_model": {"attack": attack, "defense": "clean_model",
                                      **{f"sequela.{k}": v for k, v in values.items() if is_headline(settings, k)}}
            for attack, values in baselines.items()}


def headline(params: Params, records: dict[str, Record], scope: Scope) -> dict[str, dict[str, dict[str, Any]]]:
    """``{attack: {defense: {ca, ca_ci, asr, asr_ci, der, seeds, verdict}}}``: the compact file
    ``dvc exp show`` and ``dvc metrics diff`` read (columns such as ``badnets.sft.asr``); ``*_ci`` is
    the half-width of the interval (None with one seed)."""
    def compact(record: Record) -> dict[str, Any]:
        rounded = {key: None if record[key] is None else round(record[key], 4)
                   for key in ("ca", "ca_half", "asr", "asr_half", "der")}
        return {"ca": rounded["ca"], "ca_ci": rounded["ca_half"], "asr": rounded["asr"], "asr_ci": rounded["asr_half"],
                "der": rounded["der"], "seeds": record["n_seeds"], "verdict": record["verdict"]}

    return {attack: {defense: compact(records[f"{attack}-{defense}"]) for defense in params.grid.cells(scope)}
            for attack in params.grid.attack_list(scope)}


def calibration_trials(params: Params, scope: Scope) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """``{attack: {instance: {seed: calibration record}}}`` for every calibrated instance in the grid."""
    out: dict[str, dict[str, dict[int, dict[str, Any]]]] = {}
    for attack in params.grid.attack_list(scope):
        out[attack] = {}
        for defense in params.grid.cells(scope):
            cells = defense_records(params, attack, defense)
            if all(cell.get("calibration") for cell in cells.values()):
                out[attack][defense] = {seed: cell["calibration"] for seed, cell in cells.items()}
    return out


def training_times(params: Params, scope: Scope) -> dict[str, float]:
    """Mean wall time of each backdoored model's training: the yardstick of a defense's cost."""
    return {attack: mean(read_record(train_report_dir(params, attack, seed) / "timing.json", f"train@{attack}-s{seed}")["seconds"]
                         for seed in seeds(params, attack))
            for attack in params.grid.attack_list(scope)}


def paradigm_rows(params: Params) -> list[Record]:
    """Per paradigm victim (at its seed): the clean counterpart's CA, the implant stage's record (what
    the attacker measured on the upstream it published), the deployed model's CA / ASR before defense."""
    rows = []
    for victim in params.grid.victims():
        paradigm, seed = paradigm_of(params, victim), seeds(params, victim)[0]
        implant = read_json(implant_record(victim, seed))
        trained = read_json(train_report_dir(params, victim, seed) / "metrics.json")
        counterpart = read_json(paradigm_records("counterpart", paradigm))
        rows.append({"victim": victim, "paradigm": paradigm, "attack": attack_of(params, victim),
                     "clean counterpart ca": counterpart["ca"], "victim ca": trained["ca"],
                     "ca cost": counterpart["ca"] - trained["ca"], "victim asr": trained["asr"],
                     **{f"upstream {k}": v for k, v in implant.items()
                        if k not in ("victim", "seed", "backdoored_upstream", "seconds")}})
    return rows
