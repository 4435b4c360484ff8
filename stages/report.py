"""Stage `report`: every cell -> reports/summary.json, paper-style tables and figures.

    python stages/report.py
"""

from __future__ import annotations

from collections import defaultdict

import pandas as pd

from backdoorlab.config import Params, load_params
from backdoorlab.io import write_json
from backdoorlab.reporting.figures import grouped_bars, line_panels, panels, save
from backdoorlab.reporting.sequela_figures import mia_auc_figure, reinjection_figures, robust_accuracy_figures
from backdoorlab.reporting.summary import (Record, SequelaResults, baseline_records, collect_cells,
                                           reinject_baselines, sequela_results, undefended_metrics)
from backdoorlab.reporting.tables import (detail_table, main_table, sequela_table, write_frame,
                                          write_sequela_table)
from backdoorlab.workspace import REPORTS, run_stage

TABLES, FIGURES = REPORTS / "tables", REPORTS / "figures"


def defense_bars(params: Params, records: dict[str, Record]) -> None:
    figure, axes = panels(len(params.grid.attacks))
    for ax, attack in zip(axes, params.grid.attacks):
        cells = [records[f"{attack}-{d}"] for d in params.grid.main]
        grouped_bars(ax, params.grid.main, {"CA": [c["ca"] for c in cells], "ASR": [c["asr"] for c in cells]},
                     "fraction")
        ax.set_ylim(0, 1.05)
        ax.set_title(attack)
    save(figure, FIGURES / "defenses_ca_asr.png")


def sequela_report(params: Params, sequela: SequelaResults, baselines: dict[str, dict[str, float]]) -> None:
    """Per attack a table (Markdown and CSV) of every sequela metric; the sequela figures."""
    attacks, main = params.grid.attacks, params.grid.main
    for attack in attacks:
        write_sequela_table(sequela_table(sequela[attack], main, baselines[attack]), TABLES / f"sequela_{attack}",
                            f"Backdoor sequela, {attack}")
    mia_auc_figure(FIGURES / "sequela_mia_auc.png", attacks, main, sequela)
    robust_accuracy_figures(FIGURES, attacks, main, sequela)
    reinjection_figures(FIGURES, attacks, main, sequela, baselines)


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
    sequela, baselines = sequela_results(params), reinject_baselines(params)
    records = collect_cells(params, sequela)
    write_json(REPORTS / "summary.json", {**records, **baseline_records(params, baselines)})
    write_json(REPORTS / "undefended.json", undefended_metrics(params))

    write_frame(main_table(records, params.grid.attacks, params.grid.main), TABLES / "main")
    notes = sorted({k for r in records.values() for k in r if k.startswith("note.")})
    write_frame(detail_table(records, notes), TABLES / "cells")

    defense_bars(params, records)
    sequela_report(params, sequela, baselines)
    tradeoff_figure(params, records)
    print(f"report: {len(records)} cells -> {REPORTS}/summary.json, {TABLES}/, {FIGURES}/")


if __name__ == "__main__":
    run_stage(main)
