"""NAD: attention maps, the activation tap, and backdoor removal on the planted model."""

from __future__ import annotations

import pytest
import torch

from backdoorlab.defenses.nad import attention_distance, attention_map
from backdoorlab.errors import ConfigError
from backdoorlab.models.layers import ActivationTap
from defense_checks import assert_removed, defend

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too


def test_attention_map_is_a_unit_channel_mean():
    activation = torch.zeros(2, 3, 2, 2)
    activation[0, :, 0, 0] = 2.0  # all attention on one pixel
    activation[1] = -1.0  # uniform; the sign does not matter
    maps = attention_map(activation, p=2.0)
    assert maps.shape == (2, 4)
    assert torch.allclose(maps[0], torch.tensor([1.0, 0.0, 0.0, 0.0]))
    assert torch.allclose(maps[1], torch.full((4,), 0.5))
    assert attention_distance(activation, activation, 2.0).item() == 0.0
    assert attention_distance(activation[:1], activation[1:], 2.0).item() == pytest.approx((0.25 + 3 * 0.25) / 4)


def test_tap_records_named_outputs_and_removes_its_hooks(planted):
    model = planted.model()
    with ActivationTap(model, ["features.1", "features.2"], "nad.layers") as tap:
        model(torch.rand(2, 1, 28, 28))
        shapes = {name: out.shape for name, out in tap.outputs.items()}
    assert shapes == {"features.1": (2, 16, 7, 7), "features.2": (2, 32, 3, 3)}
    assert all(not m._forward_hooks for m in model.modules())
    with pytest.raises(ConfigError, match="features.9"):
        ActivationTap(model, ["features.9"], "nad.layers")


def test_nad_removes_the_backdoor(planted):
    # The paper's recipe (teacher 10 epochs, student 20, LR 0.01) with beta at the top of NAD's
    # declared strength grid, judged by the mean over three defense seeds: one run of NAD on this
    # small model is a lottery (paper's beta 5000: ASR 4-71% by seed and kernel path). Measured
    # 2026-12-06, means over seeds 0-2: ASR 5.3% (native AVX-512/AMX), 16.6% (avx2), 22.3%
    # (default kernels) against the bound of half the planted 97-98%; CA drop 11-12 points.
    runs = [defend(planted, "nad", seed=seed, beta=10000.0)[1] for seed in range(3)]
    mean = {key: sum(run[key] for run in runs) / len(runs) for key in ("ca", "asr")}
    assert_removed(planted, mean, max_ca_drop=0.2)
