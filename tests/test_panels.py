"""Small multiples read at a glance: no grid of panels is a strip (reporting/panels.py)."""

from __future__ import annotations

import pytest

from backdoorlab.reporting.figures import plt
from backdoorlab.reporting.panels import MAX_ASPECT, PANELS_PER_ROW, panels


@pytest.mark.parametrize("width, height", [(5.0, 3.8), (5.5, 4.8), (12.0, 3.4), (2.0, 4.0)])
@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 7, 9, 18])
def test_every_grid_obeys_the_aspect_rule_and_holds_every_panel(count, width, height):
    figure, axes = panels(count, width=width, height=height)
    columns = figure.axes[0].get_gridspec().ncols
    wide, tall = figure.get_size_inches()
    plt.close(figure)
    assert len(axes) == count and all(ax.get_visible() for ax in axes)
    assert wide / tall <= MAX_ASPECT + 1e-9, (count, width, height, wide, tall)
    assert columns <= PANELS_PER_ROW
