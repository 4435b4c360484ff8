"""PNG figures (rendered offline with matplotlib's Agg backend, written atomically)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from backdoorlab.io import atomic_path  # noqa: E402


def save(figure: plt.Figure, path: str | Path) -> None:
    figure.tight_layout()
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=110)
    plt.close(figure)


def trigger_preview(clean: torch.Tensor, triggered: torch.Tensor, path: str | Path, title: str) -> None:
    """Clean images (top row) above their triggered copies (bottom row)."""
    n = len(clean)
    figure, axes = plt.subplots(2, n, figsize=(1.3 * n, 2.9), squeeze=False)
    for row, images in enumerate((clean, triggered)):
        for i in range(n):
            image = images[i].permute(1, 2, 0).numpy()
            axes[row][i].imshow(image.squeeze(-1) if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
            axes[row][i].axis("off")
    figure.suptitle(f"{title}: clean (top) and triggered (bottom)")
    save(figure, path)


def grouped_bars(ax: plt.Axes, groups: Sequence[str], series: dict[str, Sequence[float]], ylabel: str,
                 errors: dict[str, Sequence[float]] | None = None) -> None:
    """Bars of several named series side by side for each group label, with error bars for the
    series ``errors`` names (their half-widths)."""
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(groups))
    for i, (name, values) in enumerate(series.items()):
        ax.bar(x + (i - (len(series) - 1) / 2) * width, values, width, label=name,
               yerr=(errors or {}).get(name), capsize=2, error_kw={"linewidth": 0.8})
    ax.set_xticks(x, groups, rotation=30, ha="right")
    ax.set_ylabel(ylabel)
    ax.axhline(0, color="black", linewidth=0.6)
    ax.legend(fontsize=8)
