"""Figures of the backdoor sequela: one question per figure, one panel per backdoor attack.

- membership inference: each defense's change of every headline MIA AUC against the undefended
  model, with 95% intervals from the paired bootstrap (the undefended AUCs, with theirs, in the legend);
- adversarial examples: robust accuracy against eps, one line per defense, a figure per instance;
- re-injection: ASR against the number of poisoned samples k, one line per defense plus the model
  trained without poison (the baseline a defended model should not beat).

Curves are found from the metric names (``<instance>.robust_acc@<eps>``, ``<instance>.asr@<k>``,
``<...>.auc``), so a new instance in params.yaml shows up without touching this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

from backdoorlab.reporting.figures import grouped_bars, save
from backdoorlab.reporting.panels import line_panels, panels
from backdoorlab.reporting.summary import SequelaResults
from backdoorlab.reporting.uncertainty import Uncertainty


def curve_points(metrics: dict[str, float], prefix: str) -> dict[str, tuple[list[float], list[float]]]:
    """``{instance: (xs, ys)}`` for every key ``<instance>.<prefix>@<x>``, sorted by x."""
    points: dict[str, list[tuple[float, float]]] = {}
    for key, value in metrics.items():
        instance, _, metric = key.partition(".")
        name, at, x = metric.partition("@")
        if at and name == prefix:
            points.setdefault(instance, []).append((float(x), value))
    return {instance: ([x for x, _ in sorted(p)], [y for _, y in sorted(p)]) for instance, p in points.items()}


def mia_auc_figure(path: Path, attacks: Sequence[str], defenses: Sequence[str], results: SequelaResults,
                   deltas: SequelaResults, errors: Uncertainty, headline: Callable[[str], bool]) -> None:
    """Per attack, the change of each headline membership AUC per defense (mean over seeds of the
    change within each seed), +-1.96 standard errors."""
    changed = [d for d in defenses if d != "none"]
    figure, axes = panels(len(attacks), width=max(5.5, 0.9 * len(changed) + 2.5), height=4.8)
    for ax, attack in zip(axes, attacks):
        before, error = results[attack]["none"], errors[attack]
        keys = [k for k in error["none"] if k.endswith(".auc") and headline(k)]
        labels = {k: f"{k.removesuffix('.auc')} (before {before[k]:.3f} ± {error['none'][k][0]:.3f})" for k in keys}
        grouped_bars(ax, changed, {labels[k]: [deltas[attack][d][k] for d in changed] for k in keys},
                     "AUC change (after - before)",
                     errors={labels[k]: [1.96 * error[d][k][1] for d in changed] for k in keys})
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)  # below: bars grow downwards
        ax.set_title(f"{attack}: MIA AUC change (95% CI)", fontsize=10)
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
