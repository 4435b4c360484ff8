"""The defender's own view of utility: a held-out validation split that no defense trains on,
calibration of a defense's strength on it, the collapse measure, and stopping on a NaN loss."""

from __future__ import annotations

import copy

import pytest
import torch

from backdoorlab.data import ImageSet
from backdoorlab.defenses import build_defense
from backdoorlab.defenses.calibration import calibrate
from backdoorlab.errors import ConfigError, TrainingDiverged
from backdoorlab.metrics import retained_accuracy
from backdoorlab.training.loop import accuracy, fit, sgd
from backdoorlab.training.schedules import constant, with_warmup
from backdoorlab.pipeline.victims import Splits

pytestmark = pytest.mark.planted  # trains and asserts an effect: `make test` runs it on a second kernel path too

CPU = torch.device("cpu")


def numbered_splits(n: int) -> Splits:
    """A training set whose i-th image carries the value i, so positions can be read back."""
    images = torch.arange(n, dtype=torch.int64).remainder(256).to(torch.uint8).view(n, 1, 1, 1)
    train = ImageSet(images, torch.arange(n) % 10)
    empty = ImageSet(torch.zeros(0, 1, 1, 1, dtype=torch.uint8), torch.zeros(0, dtype=torch.long))
    order = torch.randperm(n, generator=torch.Generator().manual_seed(0))
    return Splits(train, empty, empty, order)


def test_validation_split_never_overlaps_the_fitting_part_and_nests():
    splits = numbered_splits(200)
    small, large = splits.defender(0.25, 0.2), splits.defender(0.5, 0.2)
    fit, held_out = set(small.fit.images.flatten().tolist()), set(small.validation.images.flatten().tolist())
    assert len(fit) + len(held_out) == 50 and not fit & held_out
    assert len(held_out) == 10
    # a larger defender's validation set contains the smaller one's; the union is its whole subset
    assert held_out <= set(large.validation.images.flatten().tolist())
    assert fit | held_out == set(splits.defense_subset(0.25).images.flatten().tolist())


def test_a_validation_split_that_leaves_a_part_empty_is_a_config_error():
    assert len(numbered_splits(20).defender(0.1, 0.2).fit) == 1  # 2 images: 1 + 1 is still a split
    with pytest.raises(ConfigError, match="data.validation_fraction"):
        numbered_splits(20).defender(0.05, 0.5)  # 1 image cannot be split
    with pytest.raises(ConfigError, match="data.validation_fraction"):
        numbered_splits(100).defender(0.1, 0.95)  # 10 images, all held out: nothing to train on


def test_retained_accuracy_is_measured_above_chance():
    assert retained_accuracy(0.9, 0.9, 10) == pytest.approx(1.0)
    assert retained_accuracy(0.9, 0.1, 10) == pytest.approx(0.0)
    assert retained_accuracy(0.5, 0.3, 10) == pytest.approx(0.5)
    assert retained_accuracy(0.05, 0.0, 10) == 1.0  # a model at chance has nothing to lose


def test_calibration_picks_the_strongest_setting_within_budget(planted):
    """Fine-tuning's LR over a grid that reaches absurd values: calibration must keep the largest
    LR whose validation accuracy stays within budget, judged on validation data alone, and bisect
    must agree with running the whole grid."""
    section = {"method": "ft", "epochs": 2, "calibrate": {"budget": 0.05, "grid": [0.001, 0.01, 0.1, 1.0, 5.0],
                                                          "search": "grid"}}
    spec = build_defense("ft_cal", section)
    model, ctx = planted.model(), planted.context()
    reference = accuracy(model, planted.validation, CPU)
    measure = lambda m: accuracy(m, planted.validation, CPU)  # noqa: E731
    result = calibrate(spec.calibration, model, ctx, reference, measure)
    assert [t["value"] for t in result.evaluated] == [0.001, 0.01, 0.1, 1.0, 5.0]
    within = [t["value"] for t in result.evaluated if not t["diverged"] and t["val_acc"] >= reference - 0.05]
    assert within and result.within_budget and result.chosen == max(within)
    assert any(t["value"] > result.chosen for t in result.evaluated), "the grid must reach past the budget"
    assert measure(result.outcome.model) == pytest.approx(
        next(t["val_acc"] for t in result.evaluated if t["value"] == result.chosen))
    assert torch.equal(model.state_dict()["classifier.weight"], planted.state["classifier.weight"])

    bisect = build_defense("ft_cal", {**section, "calibrate": {**section["calibrate"], "search": "bisect"}})
    result_bisect = calibrate(bisect.calibration, planted.model(), planted.context(), reference, measure)
    assert result_bisect.chosen == result.chosen and len(result_bisect.evaluated) < 5


def test_calibration_with_nothing_within_budget_keeps_the_weakest_and_says_so(planted):
    spec = build_defense("ft_cal", {"method": "ft", "epochs": 1,
                                    "calibrate": {"budget": 0.0, "grid": [2.0, 5.0]}})
    result = calibrate(spec.calibration, planted.model(), planted.context(), reference_acc=1.01,
                       validation_accuracy=lambda m: accuracy(m, planted.validation, CPU))
    assert not result.within_budget and result.chosen == 2.0


@pytest.mark.parametrize("method", ["ft", "sft", "d3"])
def test_every_default_grid_starts_at_a_near_no_op(planted, method):
    """The weakest setting of a calibrated instance's default grid barely moves the model: within
    the default 5-point budget on the defender's validation data, and the backdoor stays (so "over
    budget" can only mean that nothing removes it within budget). D3's floor keeps the classifier
    at its weakest value only; its stronger values re-draw it, as the authors' D3 does."""
    spec = build_defense("x_cal", {"method": method, "calibrate": {"budget": 0.05}})
    weakest = spec.calibration.candidates[0][1]
    model = planted.model()
    before = accuracy(model, planted.validation, CPU)
    after = weakest.apply(model, planted.context()).model
    assert accuracy(after, planted.validation, CPU) >= before - 0.05
    assert planted.metrics(after)["asr"] > 0.5 * planted.before["asr"]
    if method == "d3":
        assert weakest.config.warm_start == "keep"
        assert {d.config.warm_start for _, d in spec.calibration.candidates[1:]} == {"random"}


def test_a_calibrated_knob_set_twice_or_unknown_is_a_config_error():
    with pytest.raises(ConfigError, match=r"defenses.x.lr: is calibrated"):
        build_defense("x", {"method": "ft", "lr": 0.1, "calibrate": {}})
    with pytest.raises(ConfigError, match=r"defenses.x.calibrate.knob: 'nope' is not a parameter"):
        build_defense("x", {"method": "ft", "calibrate": {"knob": "nope", "grid": [1]}})
    with pytest.raises(ConfigError, match=r"defenses.x.calibrate.knob: method 'none' declares no strength"):
        build_defense("x", {"method": "none", "calibrate": {}})
    with pytest.raises(ConfigError, match=r"defenses.x.epochs: must be >= 0"):
        build_defense("x", {"method": "ft", "calibrate": {"knob": "epochs", "grid": [1, -1]}})


def test_a_nan_loss_stops_training_with_one_line_naming_the_run(planted):
    model = planted.model()
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match=r"^probe: loss became nan at epoch 1, step 1 \(LR 0.1\)"):
        fit(model, planted.clean, epochs=1, batch_size=64, optimizer=sgd(model, 0.1, 0.9, 0.0),
            schedule=constant(0.1), generator=torch.Generator().manual_seed(0), augment=None, device=CPU,
            label="probe")


def test_warmup_ramps_the_learning_rate_linearly():
    schedule = with_warmup(constant(0.1), 4)
    assert [round(schedule(s), 4) for s in range(6)] == [0.025, 0.05, 0.075, 0.1, 0.1, 0.1]
    assert with_warmup(constant(0.1), 0)(0) == 0.1


def test_fine_pruning_stops_on_validation_data_not_on_what_it_trains(planted):
    spec = build_defense("fp", {"method": "fp", "epochs": 0})
    outcome = spec.defense.apply(planted.model(), planted.context())
    untouched = copy.deepcopy(planted.model())
    assert outcome.notes["val_acc_unpruned"] == pytest.approx(accuracy(untouched, planted.validation, CPU))
