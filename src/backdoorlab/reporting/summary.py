"""Gather every cell's JSON into flat records: one per (attack, defense), deltas included."""

from __future__ import annotations

from typing import Any

from backdoorlab.config import Params
from backdoorlab.io import read_json
from backdoorlab.workspace import cell_dir, train_report_dir

Record = dict[str, Any]


def collect_cells(params: Params) -> dict[str, Record]:
    """``{"<attack>-<defense>": record}`` with defense metrics and, for main defenses, sequela
    numbers plus ``delta.<metric>`` = defended - undefended."""
    records: dict[str, Record] = {}
    for attack in params.grid.attacks:
        baseline = read_json(cell_dir(attack, "none") / "sequela.json")
        for defense in params.grid.defenses:
            cell = read_json(cell_dir(attack, defense) / "defense.json")
            record: Record = {k: cell[k] for k in ("attack", "defense", "method", "clean_fraction",
                                                    "ca", "asr", "ra", "der", "seconds")}
            for key, value in cell.get("notes", {}).items():
                record[f"note.{key}"] = value
            if defense in params.grid.main:
                sequela = read_json(cell_dir(attack, defense) / "sequela.json")
                for key, value in sequela.items():
                    if key.endswith(".seconds"):
                        continue
                    record[f"sequela.{key}"] = value
                    record[f"delta.{key}"] = value - baseline[key]
            records[f"{attack}-{defense}"] = record
    return records


def undefended_metrics(params: Params) -> dict[str, Record]:
    return {attack: read_json(train_report_dir(attack) / "metrics.json") for attack in params.grid.attacks}
