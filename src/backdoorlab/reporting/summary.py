"""Gather every cell's JSON into flat records: one per (attack, defense), deltas included."""

from __future__ import annotations

from typing import Any

from backdoorlab.config import Params
from backdoorlab.io import read_json
from backdoorlab.workspace import baseline_dir, cell_dir, train_report_dir

Record = dict[str, Any]
# {attack: {defense: {"<instance>.<metric>": value}}}, every metric of every grid.main cell
SequelaResults = dict[str, dict[str, dict[str, float]]]


def _metrics_only(raw: dict[str, float]) -> dict[str, float]:
    return {key: value for key, value in raw.items() if not key.endswith(".seconds")}


def sequela_results(params: Params) -> SequelaResults:
    return {attack: {defense: _metrics_only(read_json(cell_dir(attack, defense) / "sequela.json"))
                     for defense in params.grid.main}
            for attack in params.grid.attacks}


def reinject_baselines(params: Params) -> dict[str, dict[str, float]]:
    """``{attack: {"<instance>.<metric>": value}}``: re-injection on the model trained without poison."""
    return {attack: _metrics_only(read_json(baseline_dir(attack) / "reinject.json")) for attack in params.grid.attacks}


def is_headline(params: Params, key: str) -> bool:
    """Whether the sequela number ``<instance>.<metric>`` goes into reports/summary.json."""
    instance, _, metric = key.partition(".")
    attack = params.sequela.attacks.get(instance)
    return attack is not None and attack.headline(metric)


def collect_cells(params: Params, sequela: SequelaResults) -> dict[str, Record]:
    """``{"<attack>-<defense>": record}`` with defense metrics and, for main defenses, the headline
    sequela numbers as ``sequela.<metric>`` plus ``delta.<metric>`` = defended - undefended."""
    records: dict[str, Record] = {}
    for attack in params.grid.attacks:
        baseline = sequela[attack]["none"]
        for defense in params.grid.defenses:
            cell = read_json(cell_dir(attack, defense) / "defense.json")
            record: Record = {k: cell[k] for k in ("attack", "defense", "method", "clean_fraction",
                                                    "ca", "asr", "ra", "der", "seconds")}
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


def undefended_metrics(params: Params) -> dict[str, Record]:
    return {attack: read_json(train_report_dir(attack) / "metrics.json") for attack in params.grid.attacks}
