"""The fidelity map: CA cost and ASR of each defense as the defender's clean data grows.

Each point is a defense instance at one defender size, over the seeds of ``grid.seeds``: its CA
cost is the paired difference to the same seed's undefended model (the default run's ``none``
cell), so the victim's own seed-to-seed spread cancels. Against the papers' operating point (CA
within ``paper_ca_cost``, ASR at most ``paper_asr``) each point is labelled, in the style of the
cells' verdicts (reporting/verdicts.py):

- ``holds``: the upper ends of both intervals are within the bounds (and the model did not collapse);
- ``fails``: the lower end of either is beyond its bound, or at least half of the seeds collapsed;
- ``unclear``: otherwise (the intervals straddle a bound).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.ticker import NullFormatter

from backdoorlab.config import Params
from backdoorlab.fidelity import FidelityCell, FidelitySettings
from backdoorlab.layout import fidelity_cell_dir, sized_instance
from backdoorlab.reporting.figures import save
from backdoorlab.reporting.panels import panels
from backdoorlab.reporting.summary import aggregate, defense_records, read_record
from backdoorlab.reporting.tables import with_interval
from backdoorlab.reporting.verdicts import Interval, interval

Row = dict[str, Any]


def cell_records(params: Params, cell: FidelityCell) -> dict[int, dict[str, Any]]:
    """The cell's record at every seed: the default run's own, or the map's ``<defense>_<pct>pct``."""
    if cell.in_default_run:
        return defense_records(params, cell.attack, cell.defense)
    name = sized_instance(cell.defense, cell.fraction)
    return {seed: read_record(fidelity_cell_dir(cell.attack, name, seed) / "defense.json",
                              f"defend@{cell.attack}-{name}-s{seed}") for seed in params.grid.seeds}


def claim(cost: Interval, asr: Interval, collapsed: bool, settings: FidelitySettings) -> str:
    """Whether the papers' claim holds at this point (module docstring)."""
    if collapsed or cost.lo > settings.paper_ca_cost or asr.lo > settings.paper_asr:
        return "fails"
    if cost.hi <= settings.paper_ca_cost and asr.hi <= settings.paper_asr:
        return "holds"
    return "unclear"


def map_row(params: Params, settings: FidelitySettings, cell: FidelityCell,
            reference: dict[int, dict[str, Any]]) -> Row:
    """One point of the map, over seeds (``reference``: the undefended cell at each seed): the
    cell's own summary over seeds (as every report aggregates a cell), its CA cost and its claim."""
    records = cell_records(params, cell)
    summary = aggregate(params, records)
    confidence = params.report.confidence
    cost = interval([reference[s]["ca"] - r["ca"] for s, r in records.items()], confidence)
    asr = interval([r["asr"] for r in records.values()], confidence)
    first = next(iter(records.values()))
    return {"attack": cell.attack, "defense": cell.defense, "fraction": cell.fraction,
            "images": first["fit_samples"] + first["validation_samples"], "validation_images": first["validation_samples"],
            "n_seeds": summary["n_seeds"], "ca": summary["ca"], "ca_half": summary["ca_half"],
            "ca_cost": cost.mean, "ca_cost_half": cost.half, "asr": summary["asr"], "asr_half": summary["asr_half"],
            "collapsed_seeds": summary["collapsed_seeds"], "claim": claim(cost, asr, summary["collapsed"], settings),
            "calibrated": summary.get("calibrated", ""), "within_budget": summary.get("within_budget"),
            "seconds": summary["seconds"], "in_default_run": cell.in_default_run}


def map_rows(params: Params, settings: FidelitySettings, cells: list[FidelityCell]) -> list[Row]:
    references = {attack: defense_records(params, attack, "none") for attack in settings.attacks}
    return [map_row(params, settings, cell, references[cell.attack]) for cell in cells]


def fidelity_markdown(rows: list[Row]) -> str:
    """One table per attack: a row per defense, a column per defender size, each entry
    ``CA cost / ASR (claim)`` in points."""
    parts = []
    for attack in dict.fromkeys(r["attack"] for r in rows):
        mine = [r for r in rows if r["attack"] == attack]
        sizes = list(dict.fromkeys((r["fraction"], r["images"]) for r in mine))
        frame = pd.DataFrame({f"{images:,} images ({100 * fraction:g}%)": {
            r["defense"]: f"{with_interval(r, 'ca_cost')} / {with_interval(r, 'asr')} ({r['claim']})"
            for r in mine if r["fraction"] == fraction} for fraction, images in sizes})
        frame.index.name = f"{attack}: CA cost / ASR"
        parts.append(frame.to_markdown())
    return "\n\n".join(parts) + "\n"


def fidelity_figure(rows: list[Row], settings: FidelitySettings, path: Path) -> None:
    """CA cost (top) and ASR (bottom) against the defender's images, a column per attack, a line per
    defense with its interval; the papers' operating point is the dotted line and the shaded band.
    The axes show what a number can be (ASR 0-100%, a cost down to a few points of gain): with three
    seeds a t-interval can reach past them, and its bar is cut at the axis."""
    attacks = list(dict.fromkeys(r["attack"] for r in rows))
    sizes = sorted({r["images"] for r in rows})
    top_cost = min(100.0, max(100 * r["ca_cost"] for r in rows) + 8)
    figure, axes = panels(2 * len(attacks), width=4.6, height=3.4, columns=len(attacks))
    for column, attack in enumerate(attacks):
        for row, (key, bound, label, limits) in enumerate((
                ("ca_cost", settings.paper_ca_cost, "CA cost (points)", (-5.0, top_cost)),
                ("asr", settings.paper_asr, "ASR (%)", (0.0, 102.0)))):
            ax = axes[row * len(attacks) + column]
            for defense in dict.fromkeys(r["defense"] for r in rows):
                mine = [r for r in rows if r["attack"] == attack and r["defense"] == defense]
                ax.errorbar([r["images"] for r in mine], [100 * r[key] for r in mine],
                            yerr=[100 * (r[f"{key}_half"] or 0.0) for r in mine], marker="o", capsize=3, label=defense)
            ax.axhspan(limits[0], 100 * bound, color="tab:green", alpha=0.15)
            ax.axvline(settings.paper_images, color="black", linestyle=":", linewidth=1)
            ax.set_ylim(*limits)
            ax.set_xscale("log")
            ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("defender's clean images (log scale)")
            ax.set_ylabel(label)
            ax.set_title(f"{attack}: {label.split(' (')[0]}")
            ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(f"Where the papers' claim holds: green = within {100 * settings.paper_ca_cost:g} CA points and "
                    f"{100 * settings.paper_asr:g}% ASR; dotted = their {settings.paper_images:,} images")
    save(figure, path)


def fidelity_summary(rows: list[Row]) -> dict[str, dict[str, dict[str, dict[str, Any]]]]:
    """``{attack: {defense: {"<images>": {ca_cost, asr, claim}}}}`` for ``dvc exp show``."""
    out: dict[str, dict[str, dict[str, dict[str, Any]]]] = {}
    for r in rows:
        out.setdefault(r["attack"], {}).setdefault(r["defense"], {})[str(r["images"])] = {
            "ca_cost": round(r["ca_cost"], 4), "asr": round(r["asr"], 4), "claim": r["claim"]}
    return out
