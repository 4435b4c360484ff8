"""Every figure committed under reports/ reads at a glance: none is a strip.

tests/test_panels.py checks the layout code at every matrix size; this checks what a reviewer
actually opens, so a block whose figures were made before the rule (and not re-run since) fails
here instead of staying in the repository unnoticed.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from backdoorlab.reporting.panels import MAX_ASPECT

REPORTS = Path(__file__).resolve().parents[1] / "reports"


def test_no_committed_figure_is_more_than_max_aspect_times_as_wide_as_tall():
    figures = sorted(REPORTS.rglob("*.png"))
    assert figures, f"no figure under {REPORTS}"
    strips = []
    for path in figures:
        with Image.open(path) as image:
            width, height = image.size
        if width > MAX_ASPECT * height:
            strips.append(f"{path.relative_to(REPORTS)}: {width} x {height} ({width / height:.1f}:1)")
    assert not strips, "figures wider than the aspect rule allows:\n" + "\n".join(strips)
