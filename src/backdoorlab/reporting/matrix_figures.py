"""The attack x defense matrix at a glance: heatmaps with verdict marks, and the CA-cost / ASR trade-off.

A table of 7 attacks x 18 defenses is read cell by cell; a heatmap shows at once which defenses
remove which backdoors and what it costs, and the trade-off panels (one per defense, one point per
attack) show whether a defense buys its ASR with clean accuracy. Every number is a mean over the
cell's seeds; the marks are the report's verdicts (reporting/verdicts.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from backdoorlab.reporting.figures import save
from backdoorlab.reporting.panels import panels

# One character per verdict, printed under the cell's number; the figure's title says what they mean.
MARKS = {"removed": "R", "not removed": "N", "inconclusive": "?", "collapsed": "C"}
LEGEND = "R removed, N not removed, ? inconclusive, C collapsed; * one seed"
PAPER_CA_COST, PAPER_ASR = 0.03, 0.05  # the papers' operating point: removal within a few CA points


def ca_cost(records: Mapping[str, Mapping[str, Any]], attack: str, defense: str) -> float:
    """Clean accuracy lost against the same attack's undefended model (means over seeds)."""
    return records[f"{attack}-none"]["ca"] - records[f"{attack}-{defense}"]["ca"]


def verdict_mark(record: Mapping[str, Any]) -> str:
    """The cell's verdict mark (``removed, 1 seed`` -> ``R*``)."""
    verdict, _, seeds = str(record["verdict"]).partition(", ")
    return MARKS[verdict] + ("*" if seeds else "")


def matrix(attacks: Sequence[str], defenses: Sequence[str], records: Mapping[str, Mapping[str, Any]]
           ) -> tuple[list[str], np.ndarray, np.ndarray, list[list[str]]]:
    """The defended columns (all but ``none``), ASR and CA cost in percent (attacks x columns), and
    each cell's verdict mark."""
    columns = [d for d in defenses if d != "none"]
    asr = np.array([[records[f"{a}-{d}"]["asr"] for d in columns] for a in attacks]) * 100
    cost = np.array([[ca_cost(records, a, d) for d in columns] for a in attacks]) * 100
    return columns, asr, cost, [[verdict_mark(records[f"{a}-{d}"]) for d in columns] for a in attacks]


def heatmaps(path: str | Path, attacks: Sequence[str], defenses: Sequence[str],
             records: Mapping[str, Mapping[str, Any]]) -> None:
    """ASR and CA cost (percent) of every attack x defense, each cell annotated with its verdict."""
    columns, asr, cost, marks = matrix(attacks, defenses, records)
    width, height = max(5.0, 0.75 * len(columns) + 2.0), max(2.6, 0.55 * len(attacks) + 1.8)
    figure, axes = panels(2, width=width, height=height)
    for ax, values, title, cmap, limits in ((axes[0], asr, "ASR %", "Reds", (0, 100)),
                                            (axes[1], cost, "CA cost, points", "Blues", (0, max(5.0, cost.max())))):
        image = ax.imshow(values, cmap=cmap, vmin=limits[0], vmax=limits[1], aspect="auto")
        for i in range(len(attacks)):
            for j in range(len(columns)):
                dark = (values[i, j] - limits[0]) / (limits[1] - limits[0] or 1) > 0.6
                ax.text(j, i, f"{values[i, j]:.0f}\n{marks[i][j]}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        ax.set_xticks(range(len(columns)), columns, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(len(attacks)), attacks, fontsize=8)
        ax.set_title(title, fontsize=10)
        figure.colorbar(image, ax=ax, fraction=0.03, pad=0.01)
    figure.suptitle(f"mean over seeds; {LEGEND}", fontsize=9)
    save(figure, path)


def tradeoff(path: str | Path, attacks: Sequence[str], defenses: Sequence[str],
             records: Mapping[str, Mapping[str, Any]]) -> None:
    """One panel per defense: each attack's CA cost against its ASR, with the seeds' intervals
    (the cell's CA and ASR half-widths). The shaded corner is the papers' claim: ASR at most 5% within
    3 CA points."""
    shown = [d for d in defenses if d != "none"]
    figure, axes = panels(len(shown), width=4.2, height=3.6)
    reach = [(ca_cost(records, a, d) + (records[f"{a}-{d}"]["ca_half"] or 0)) * 100 for a in attacks for d in shown]
    right = max(10.0, max(reach, default=0.0) + 2)
    for ax, defense in zip(axes, shown):
        ax.fill_between([-5, PAPER_CA_COST * 100], -2, PAPER_ASR * 100, color="green", alpha=0.15, linewidth=0,
                        label="papers' claim")
        for attack in attacks:
            cell = records[f"{attack}-{defense}"]
            ax.errorbar(ca_cost(records, attack, defense) * 100, cell["asr"] * 100,
                        xerr=(cell["ca_half"] or 0) * 100, yerr=(cell["asr_half"] or 0) * 100,
                        marker="o", capsize=2, linewidth=0.8, label=attack)
        ax.set_xlim(-5, right)
        ax.set_ylim(-2, 105)
        ax.set_title(defense, fontsize=10)
        ax.set_xlabel("CA cost (points)")
        ax.set_ylabel("ASR %")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="upper right")
    save(figure, path)
