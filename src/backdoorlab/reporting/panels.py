"""Small multiples: one panel per attack (or per metric), wrapped so that a figure reads at a glance.

A figure that puts many panels in one row becomes a strip whose labels cannot be read at any zoom
that fits a screen, so every grid here obeys one rule: at most :data:`PANELS_PER_ROW` panels to a
row, and never more than :data:`MAX_ASPECT` times as wide as it is tall.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from backdoorlab.reporting.figures import plt, save  # figures selects the Agg backend first

PANELS_PER_ROW = 4
MAX_ASPECT = 4.0  # width / height of a whole figure


def panels(count: int, width: float = 5.0, height: float = 3.8,
           columns: int | None = None) -> tuple[plt.Figure, list[plt.Axes]]:
    """``count`` panels of about ``width`` x ``height`` inches: as many to a row as the aspect rule
    allows (at most four, or ``columns`` if fewer: a grid whose rows mean something), the unused
    ones hidden. A panel wider than the rule allows on its own is made taller."""
    height = max(height, width / MAX_ASPECT)
    columns = max(1, min(count, columns or PANELS_PER_ROW, PANELS_PER_ROW, int(MAX_ASPECT * height // width)))
    rows = -(-count // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.set_visible(False)
    return figure, flat[:count]


def line_panels(path: str | Path, titles: Sequence[str], xlabel: str, ylabel: str,
                curves: Sequence[dict[str, tuple[Sequence[float], Sequence[float]]]],
                log_x: bool = False, log_y: bool = False) -> None:
    """One panel per title; each panel draws ``{label: (xs, ys)}`` as marked lines."""
    figure, axes = panels(len(titles))
    for ax, title, panel in zip(axes, titles, curves):
        for label, (xs, ys) in panel.items():
            style = "--" if "ASR" in label else "-"
            ax.plot(xs, ys, style, marker="o", label=label)
        if log_x:
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save(figure, path)
