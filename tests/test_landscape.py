"""Loss landscape: the line's ends are the two models; the stage settings are validated."""

from __future__ import annotations

import pytest
import torch

from backdoorlab.defenses import build_defense
from backdoorlab.errors import ConfigError
from backdoorlab.reporting.landscape import LandscapeSettings, interpolate, loss_path, mean_loss
from backdoorlab.settings import parse_section

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

CPU = torch.device("cpu")


def test_ends_of_the_line_are_the_backdoored_and_the_defended_model(planted):
    backdoored = planted.model()
    defended = build_defense("ft", {"method": "ft", "epochs": 2, "lr": 0.05}).defense.apply(
        planted.model(), planted.context()).model
    rows = loss_path(backdoored, defended, planted.test, planted.triggered, [0.0, 1.0, 2.0], CPU)

    assert [row["t"] for row in rows] == [0.0, 1.0, 2.0]
    test, triggered = planted.test, planted.triggered
    for row, model in zip(rows, (backdoored, defended)):
        assert row["clean_loss"] == pytest.approx(mean_loss(model, test.images, test.labels, CPU), rel=1e-5)
        assert row["poisoned_loss"] == pytest.approx(
            mean_loss(model, triggered.images, triggered.attack_labels, CPU), rel=1e-5)
    # The backdoored model fits the trigger: a low poisoned loss at t = 0, as its ASR says.
    assert rows[0]["poisoned_loss"] < 0.5
    assert rows[2]["clean_loss"] != pytest.approx(rows[1]["clean_loss"])


def test_interpolation_covers_batchnorm_statistics_and_keeps_counters(planted):
    start, end = planted.model().state_dict(), planted.model().state_dict()
    end = {k: v + 1 if v.is_floating_point() else v + 7 for k, v in end.items()}
    half = interpolate(start, end, 0.5)
    key = "features.0.1.running_mean"
    assert torch.allclose(half[key], start[key] + 0.5)
    assert torch.equal(half["features.0.1.num_batches_tracked"], end["features.0.1.num_batches_tracked"])


def test_settings_defaults_and_checks():
    settings = parse_section(LandscapeSettings, {"defenses": ["ft", "d3"], "points": 5}, "landscape")
    assert settings.ts() == pytest.approx([0.0, 0.5, 1.0, 1.5, 2.0])
    with pytest.raises(ConfigError, match="landscape.points"):
        parse_section(LandscapeSettings, {"points": 1}, "landscape")


def test_extrapolated_running_variance_is_clipped_at_zero_and_nothing_else():
    start = {"bn.running_var": torch.tensor([1.0, 4.0]), "bn.running_mean": torch.tensor([1.0, 4.0])}
    end = {"bn.running_var": torch.tensor([0.5, 4.0]), "bn.running_mean": torch.tensor([0.5, 4.0])}
    far = interpolate(start, end, 3.0)
    assert far["bn.running_var"].tolist() == [0.0, 4.0]
    assert far["bn.running_mean"].tolist() == [-0.5, 4.0]
