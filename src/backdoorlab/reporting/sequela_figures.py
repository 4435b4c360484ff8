"""Figures of the backdoor sequela: one question per figure, one panel per backdoor attack.

- membership inference: every MIA AUC of each defense, with the undefended model (``none``) as the
  "before" group and chance (0.5) marked;
- adversarial examples: robust accuracy against eps, one line per defense, a figure per instance;
- re-injection: ASR against the number of poisoned samples k, one line per defense plus the model
  trained without poison (the baseline a defended model should not beat).

Curves are found from the metric names (``<instance>.robust_acc@<eps>``, ``<instance>.asr@<k>``,
``<...>.auc``), so a new instance in params.yaml shows up without touching this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from backdoorlab.reporting.figures import grouped_bars, line_panels, panels, save
from backdoorlab.reporting.summary import SequelaResults


def curve_points(metrics: dict[str, float], prefix: str) -> dict[str, tuple[list[float], list[float]]]:
    """``{instance: (xs, ys)}`` for every key ``<instance>.<prefix>@<x>``, sorted by x."""
    points: dict[str, list[tuple[float, float]]] = {}
    for key, value in metrics.items():
        instance, _, metric = key.partition(".")
        name, at, x = metric.partition("@")
        if at and name == prefix:
            points.setdefault(instance, []).append((float(x), value))
    return {instance: ([x for x, _ in sorted(p)], [y for _, y in sorted(p)]) for instance, p in points.items()}


def mia_auc_figure(path: Path, attacks: Sequence[str], defenses: Sequence[str], results: SequelaResults) -> None:
    figure, axes = panels(len(attacks), width=max(5.0, 0.9 * len(defenses)))
    for ax, attack in zip(axes, attacks):
        keys = [k for k in results[attack]["none"] if k.endswith(".auc")]
        groups = ["none (before)" if d == "none" else d for d in defenses]
        grouped_bars(ax, groups, {k.removesuffix(".auc"): [results[attack][d][k] for d in defenses] for k in keys},
                     "membership inference AUC")
        ax.axhline(0.5, color="grey", linestyle="--", linewidth=0.8)
        values = [results[attack][d][k] for d in defenses for k in keys]
        ax.set_ylim(min(0.45, min(values) - 0.02), max(0.6, max(values) + 0.02))
        ax.set_title(f"{attack}: MIA AUC (0.5 = chance)")
    save(figure, path)


def robust_accuracy_figures(folder: Path, attacks: Sequence[str], defenses: Sequence[str],
                            results: SequelaResults) -> None:
    instances = curve_points(results[attacks[0]]["none"], "robust_acc")
    for instance in instances:
        curves = [{d: curve_points(results[attack][d], "robust_acc")[instance] for d in defenses} for attack in attacks]
        line_panels(folder / f"sequela_robust_acc_{instance}.png", [f"{a}: {instance}" for a in attacks],
                    "eps (pixel units)", "robust accuracy", curves)


def reinjection_figures(folder: Path, attacks: Sequence[str], defenses: Sequence[str], results: SequelaResults,
                        baselines: dict[str, dict[str, float]]) -> None:
    instances = curve_points(results[attacks[0]]["none"], "asr")
    for instance in instances:
        curves = []
        for attack in attacks:
            panel = {d: curve_points(results[attack][d], "asr")[instance] for d in defenses}
            panel["clean model (baseline)"] = curve_points(baselines[attack], "asr")[instance]
            curves.append(panel)
        line_panels(folder / f"sequela_reinjection_{instance}.png", [f"{a}: {instance}" for a in attacks],
                    "poisoned samples k", "ASR after re-injection", curves)
