"""Stage `report`: every cell -> reports/summary.json, paper-style tables and figures.

    python stages/report.py
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from backdoorlab.config import Params, load_params
from backdoorlab.io import write_json
from backdoorlab.reporting.figures import grouped_bars, line_panels, panels, save
from backdoorlab.reporting.summary import Record, collect_cells, undefended_metrics
from backdoorlab.reporting.tables import detail_table, main_table, sequela_table, write_frame
from backdoorlab.workspace import REPORTS, run_stage

TABLES, FIGURES = REPORTS / "tables", REPORTS / "figures"


def sequela_metric_names(records: dict[str, Record]) -> list[str]:
    first = next(r for r in records.values() if any(k.startswith("sequela.") for k in r))
    return [k.removeprefix("sequela.") for k in first if k.startswith("sequela.")]


def defense_bars(params: Params, records: dict[str, Record]) -> None:
    figure, axes = panels(len(params.grid.attacks))
    for ax, attack in zip(axes, params.grid.attacks):
        cells = [records[f"{attack}-{d}"] for d in params.grid.main]
        grouped_bars(ax, params.grid.main, {"CA": [c["ca"] for c in cells], "ASR": [c["asr"] for c in cells]},
                     "fraction")
        ax.set_ylim(0, 1.05)
        ax.set_title(attack)
    save(figure, FIGURES / "defenses_ca_asr.png")


def sequela_figure(params: Params, records: dict[str, Record], metrics: list[str]) -> None:
    defended = [d for d in params.grid.main if d != "none"]
    figure, axes = panels(len(params.grid.attacks), width=6.0)
    for ax, attack in zip(axes, params.grid.attacks):
        series = {m: [records[f"{attack}-{d}"][f"delta.{m}"] for d in defended] for m in metrics}
        grouped_bars(ax, defended, series, "defended - undefended")
        ax.set_title(f"{attack}: backdoor sequela")
    save(figure, FIGURES / "sequela_deltas.png")


def tradeoff_figure(params: Params, records: dict[str, Record]) -> None:
    """CA and ASR of every instance of the trade-off method vs one of its params, per clean fraction."""
    method, knob = params.report.tradeoff_method, params.report.tradeoff_param
    instances = [d for d in params.grid.defenses if params.defenses[d].method == method]
    if not instances:
        return
    panels_data = []
    for attack in params.grid.attacks:
        by_fraction: dict[float, list[tuple[float, Record]]] = defaultdict(list)
        for d in instances:
            x = getattr(params.defenses[d].defense.config, knob)
            by_fraction[params.clean_fraction(d)].append((x, records[f"{attack}-{d}"]))
        panel = {}
        for fraction, points in sorted(by_fraction.items()):
            points.sort(key=lambda p: p[0])
            xs = [p[0] for p in points]
            panel[f"CA, {fraction:.0%} clean"] = (xs, [p[1]["ca"] for p in points])
            panel[f"ASR, {fraction:.0%} clean"] = (xs, [p[1]["asr"] for p in points])
        panels_data.append(panel)
    line_panels(FIGURES / f"tradeoff_{method}_{knob}.png", params.grid.attacks, knob, "fraction",
                panels_data, log_x=True)
    rows = {d: {"clean_fraction": params.clean_fraction(d),
                knob: getattr(params.defenses[d].defense.config, knob),
                **{f"{a} {m}": round(records[f"{a}-{d}"][m], 4) for a in params.grid.attacks for m in ("ca", "asr")}}
            for d in instances}
    frame = pd.DataFrame.from_dict(rows, orient="index").sort_values(["clean_fraction", knob])
    frame.index.name = "defense"
    write_frame(frame, TABLES / f"tradeoff_{method}")


def main() -> None:
    params = load_params()
    records = collect_cells(params)
    write_json(REPORTS / "summary.json", records)
    write_json(REPORTS / "undefended.json", undefended_metrics(params))

    write_frame(main_table(records, params.grid.attacks, params.grid.main), TABLES / "main")
    notes = sorted({k for r in records.values() for k in r if k.startswith("note.")})
    write_frame(detail_table(records, notes), TABLES / "cells")
    metrics = sequela_metric_names(records)
    for attack in params.grid.attacks:
        write_frame(sequela_table(records, attack, params.grid.main, metrics), TABLES / f"sequela_{attack}")

    defense_bars(params, records)
    sequela_figure(params, records, [m for m in metrics if m.endswith("auc") or "robust_acc" in m])
    tradeoff_figure(params, records)
    print(f"report: {len(records)} cells -> {REPORTS}/summary.json, {TABLES}/, {FIGURES}/")


if __name__ == "__main__":
    run_stage(main)
