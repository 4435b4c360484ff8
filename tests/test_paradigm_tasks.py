"""The transfer paradigms' tasks on any class count: left out, they are derived from the data set's
class count (ten classes: the old literal defaults, so results do not change); a data set too small
for the task, or without one of its listed classes, is one line naming ``paradigms.<name>.task``.
No training: milliseconds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from backdoorlab.attacks import build_attack
from backdoorlab.config import parse_params
from backdoorlab.errors import ConfigError
from backdoorlab.paradigms import build_paradigm
from backdoorlab.pipeline.checks import check_paradigms
from backdoorlab.pipeline.victims import paradigm
from conftest import SMALL_CNN

PARAMS = parse_params(yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text()))
DATA = build_paradigm("transfer_data", {"method": "transfer_data"})
MODEL = build_paradigm("transfer_model", {"method": "transfer_model"})


def task(method: str, **lists: list[int]):
    return build_paradigm(method, {"method": method, "task": lists})


def attack(target: int, num_classes: int):
    return build_attack("badnets", {"method": "badnets", "target": target, "poison_rate": 0.1}, (1, 28, 28),
                        num_classes)


@pytest.mark.parametrize("classes", [4, 10, 43])
def test_a_left_out_task_is_the_lower_and_upper_half(classes):
    half = classes // 2
    for paradigm, source in [(DATA, tuple(range(half, classes))), (MODEL, (0, *range(half, classes)))]:
        resolved = paradigm.resolved_task(classes)
        assert resolved.downstream_classes == tuple(range(half)) and resolved.source_classes == source
        assert paradigm.downstream_classes(classes) == list(range(half))
        assert paradigm.source_spec(dataclasses.replace(SMALL_CNN, num_classes=classes)).num_classes == len(source)


def test_the_committed_params_derive_the_old_ten_class_tasks():
    for name, source in [("transfer_data", (5, 6, 7, 8, 9)), ("transfer_model", (0, 5, 6, 7, 8, 9))]:
        assert PARAMS.section("paradigms")[name]["task"] == {}
        resolved = paradigm(PARAMS, name).resolved_task(10)
        assert (resolved.source_classes, resolved.downstream_classes) == (source, (0, 1, 2, 3, 4))


@pytest.mark.parametrize("method", [DATA, MODEL])
def test_three_classes_are_one_line_naming_the_task(method):
    with pytest.raises(ConfigError) as error:
        method.downstream_classes(3)
    assert str(error.value) == (f"{method.key}.task: a transfer task needs at least 4 classes "
                                "(2 source, 2 downstream); the data set has 3")


def test_the_paradigm_block_check_stops_on_a_small_data_set_the_default_run_never_reads():
    with pytest.raises(ConfigError, match=r"^paradigms\.transfer_data\.task: a transfer task needs at least 4"):
        check_paradigms(PARAMS, (1, 28, 28), 3)


def test_listed_classes_win_and_are_checked_against_the_data_set():
    listed = task("transfer_data", source_classes=[1, 2], downstream_classes=[7, 3]).resolved_task(10)
    assert (listed.source_classes, listed.downstream_classes) == ((1, 2), (7, 3))
    with pytest.raises(ConfigError, match=r"^paradigms\.transfer_data\.task: class 12 is not in the 10-class data set$"):
        task("transfer_data", downstream_classes=[0, 12]).downstream_classes(10)


def test_a_derived_source_task_skips_listed_downstream_classes():
    assert task("transfer_data", downstream_classes=[5, 6, 7]).resolved_task(10).source_classes == (8, 9)
    assert task("transfer_model", downstream_classes=[7, 1]).resolved_task(10).source_classes == (7, 5, 6, 8, 9)
    with pytest.raises(ConfigError, match=r"^paradigms\.transfer_data\.task\.source_classes: needs at least two"):
        task("transfer_data", downstream_classes=[5, 6, 7, 8, 9]).resolved_task(10)


def test_a_derived_latent_source_carries_the_first_downstream_class_only():
    MODEL.check_attack(attack(0, 5), "grid.paradigm_attacks[0]")
    with pytest.raises(ConfigError, match=r"^grid\.paradigm_attacks\[0\]: the downstream target \(data set class 2\) "
                                          r"must be one of task.source_classes"):
        MODEL.check_attack(attack(2, 5), "grid.paradigm_attacks[0]")
    task("transfer_model", source_classes=[2, 8, 9]).check_attack(attack(2, 5), "grid.paradigm_attacks[0]")

