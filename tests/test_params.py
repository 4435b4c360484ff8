"""params.yaml validation: every bad value is a one-line error naming its key, before any work.

A stage checks the sections it reads; `python -m backdoorlab.pipeline.checks <blocks>` (run by
`make repro` before DVC) checks every section the chosen blocks read."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from backdoorlab.config import parse_params
from backdoorlab.errors import ConfigError
from backdoorlab.pipeline.checks import BLOCKS, check_params
from backdoorlab.pipeline.victims import regime_recipe, regime_settings

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = yaml.safe_load((ROOT / "params.yaml").read_text())


def edited(path: str, value) -> dict:
    """A copy of the default params with the value at dotted ``path`` replaced (None deletes)."""
    params = copy.deepcopy(DEFAULT)
    *parents, last = path.split(".")
    node = params
    for part in parents:
        node = node[part]
    node[last] = value
    return params


@pytest.mark.parametrize("path, value, key", [
    ("grid.attacks", ["badnets", "trojan"], "grid.attacks[1]"),
    ("attacks.badnets.method", "badnetz", "attacks.badnets.method"),
    ("grid.defenses", ["none", "ft", "magic"], "grid.defenses[2]"),
    ("defenses.ft.method", "finetune", "defenses.ft.method"),
    ("attacks.badnets.poison_rate", 1.5, "attacks.badnets.poison_rate"),
    ("attacks.blended.poison_rate", 0.0, "attacks.blended.poison_rate"),
    ("attacks.badnets.target", 10, "attacks.badnets.target"),
    ("attacks.blended.target", -1, "attacks.blended.target"),
    ("attacks.badnets.size", 29, "attacks.badnets.size"),
    ("train.epochs", -1, "train.epochs"),
    ("defenses.ft.epochs", -3, "defenses.ft.epochs"),
    ("defenses.sft.peak_lr_1", "high", "defenses.sft.peak_lr_1"),
    ("defenses.sft.typo_param", 1, "defenses.sft.typo_param"),
    ("train.lr", 0, "train.lr"),
    ("data.defense_fraction", 1.5, "data.defense_fraction"),
    ("model.arch", "vgg99", "model.arch"),
    ("data.dataset", "imagenet", "data.dataset"),
    ("device", "tpu", "device"),
    ("deterministic", "yes", "deterministic"),
    ("train.precision", "fp8", "train.precision"),
    ("model.width", 0, "model.width"),
    ("data.options.labels", "medium", "data.options.labels"),  # fashion_mnist has no such option
    ("grid.lead_columns", ["none", "magic"], "grid.lead_columns[1]"),
    ("grid.paradigms", ["encoder", "federated"], "grid.paradigms[1]"),
    ("grid.paradigm_attacks", ["blended", "lf"], "grid.paradigm_attacks[1]"),  # LF fits its trigger
    ("paradigms.encoder.method", "simsiam", "paradigms.encoder.method"),
    ("paradigms.encoder.downstream", {"kind": "mlp"}, "paradigms.encoder.downstream.kind"),
    ("paradigms.transfer_model.task", {"source_classes": [5, 6, 7], "downstream_classes": [0, 1, 2]},
     "grid.paradigm_attacks[0] (badnets in paradigm transfer_model)"),  # the target is no source class
    ("paradigms.transfer_data.task", {"source_classes": [5, 6], "downstream_classes": [0, 12]},
     "paradigms.transfer_data.task"),
    ("paradigms.transfer_data.downstream", {"fine_tune": "some"}, "paradigms.transfer_data.downstream.fine_tune"),
    ("grid.cleansers", ["ac", "strip"], "grid.cleansers[1]"),
    ("cleansers.ac.method", "cluster", "cleansers.ac.method"),
    ("cleansers.spectral.removal_factor", 0, "cleansers.spectral.removal_factor"),
    ("grid.cleansing_attacks", ["badnets", "blended"], "grid.cleansing_attacks"),  # the full report needs every attack
    ("grid.regimes", ["membership", "federated"], "grid.regimes[1]"),
    ("grid.regime_attacks", ["badnets", "trojan"], "grid.regime_attacks[1]"),
    ("grid.regime_defenses", ["none", "magic"], "grid.regime_defenses[1]"),
    ("grid.regime_defenses", ["ft", "sft"], "grid.regime_defenses"),  # every cell is compared to none
    ("regimes.membership.train_size", 0, "regimes.membership.train_size"),
    ("regimes.membership.train", {"epochs": -1}, "regimes.membership.train.epochs"),
    ("regimes.membership.train", {"augment": {"flip": True}}, "regimes.membership.train.augment.flip"),
    ("regimes.membership.epochs", 40, "regimes.membership.epochs"),  # belongs under train
    ("sequela.attacks.rmia.offline_a", 1.5, "sequela.attacks.rmia.offline_a"),
    ("sequela.attacks.rmia.fprs", [0.0], "sequela.attacks.rmia.fprs"),
    ("report.bootstrap", 1, "report.bootstrap"),
    ("report.confidence", 1.0, "report.confidence"),
    ("grid.seeds", [], "grid.seeds"),
    ("grid.seeds", [0, 1, 1], "grid.seeds"),
    ("grid.seeds", [0, -2], "grid.seeds[1]"),
    ("grid.seeds", [0, 1.5], "grid.seeds[1]"),
    ("grid.seeds", [0, "one"], "grid.seeds[1]"),
    ("grid.seeds", [True], "grid.seeds[0]"),
    ("landscape.defenses", ["ft", "nc"], "landscape.defenses[1]"),  # not a default-run cell
    ("fidelity.defender_fractions", [0.02, 1.5], "fidelity.defender_fractions[1]"),  # larger than the training set
    ("fidelity.defender_fractions", [0.0], "fidelity.defender_fractions[0]"),
    ("fidelity.defender_fractions", [0.1, 0.1], "fidelity.defender_fractions"),
    ("fidelity.defender_fractions", [], "fidelity.defender_fractions"),
    ("fidelity.attacks", ["badnets", "sig"], "fidelity.attacks[1]"),  # not a default-run victim
    ("fidelity.defenses", ["ft", "magic"], "fidelity.defenses[1]"),
    ("fidelity.defenses", ["none", "ft"], "fidelity.defenses[0]"),  # the reference, not a cell
])
def test_bad_value_names_its_key(path, value, key):
    with pytest.raises(ConfigError) as error:
        check_params(parse_params(edited(path, value)), BLOCKS)
    message = str(error.value)
    assert message.startswith(key + ":"), message
    assert "\n" not in message


def test_default_params_are_valid():
    params = parse_params(DEFAULT)
    check_params(params, BLOCKS)
    assert set(params.grid.main) <= set(params.grid.defenses)


def test_a_section_the_default_run_does_not_read_does_not_stop_it():
    """A broken paradigm or regime section stops its own block, not the default run."""
    broken = edited("paradigms.encoder.method", "simsiam")
    broken["regimes"]["membership"]["train_size"] = 0
    check_params(parse_params(broken), ["default"])
    with pytest.raises(ConfigError, match="^paradigms.encoder.method:"):
        check_params(parse_params(broken), ["paradigms"])


def test_a_training_time_defense_may_not_share_a_defense_name():
    with pytest.raises(ConfigError, match="^cleansers.ft: is also a defense's name"):
        check_params(parse_params(edited("cleansers.ft", {"method": "ac"})), ["full"])


def test_a_regime_overrides_only_what_it_names():
    params = parse_params(DEFAULT)
    regime, train = regime_settings(params, "membership").train, regime_recipe(params, None)
    assert regime.epochs == DEFAULT["regimes"]["membership"]["train"]["epochs"]
    assert (regime.augment.crop_padding, regime.augment.hflip) == (0, False)
    assert (regime.lr, regime.batch_size) == (train.lr, train.batch_size)


def test_a_regime_may_not_shadow_an_attack_or_paradigm_name():
    with pytest.raises(ConfigError, match="^regimes.badnets: clashes with attack 'badnets'"):
        check_params(parse_params(edited("regimes.badnets", {"train_size": 10})), ["regimes"])
    with pytest.raises(ConfigError, match="^regimes.encoder: is also a paradigm's name"):
        check_params(parse_params(edited("regimes.encoder", {"train_size": 10})), ["regimes"])


def test_a_paradigm_may_not_shadow_an_attack_name():
    params = edited("paradigms.badnets", {"method": "encoder"})
    with pytest.raises(ConfigError, match="^paradigms.badnets: clashes with attack 'badnets'"):
        check_params(parse_params(params), ["paradigms"])


def test_replicated_cells_are_the_default_run_and_the_lead_columns():
    grid = parse_params(edited("grid.seeds", [3, 5, 7])).grid
    assert grid.seeds_of("badnets") == grid.seeds_of("sig") == [3, 5, 7]  # victims of the standalone attacks
    assert grid.seeds_of("sig", "sft") == grid.seeds_of("badnets", "ftsam") == [3, 5, 7]  # a lead column
    assert grid.seeds_of("badnets", "nc") == grid.seeds_of("sig", "ac") == [3]  # other cells: the first seed
    assert grid.seeds_of("transfer_data-badnets") == grid.seeds_of("membership-badnets", "sft") == [3]


def test_full_matrix_tables_lead_with_the_lead_columns_then_keep_grid_order():
    grid = parse_params(edited("grid.lead_columns", ["d3", "fp", "none"])).grid
    cells = grid.main_cells("full")
    assert cells[:3] == ["d3", "fp", "none"]
    rest = [c for c in grid.main + grid.more_defenses + grid.cleansers if c not in ("d3", "fp", "none")]
    assert cells[3:] == rest
    assert grid.main_cells("default") == grid.main  # the default run's tables keep their order


def test_stage_refuses_bad_params_and_writes_nothing(tmp_path):
    """The real entry point: exit code 2, one line on stderr naming the key, no output file."""
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(edited("data.test_size", -1)))
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "embedded").symlink_to(ROOT / "data" / "embedded")
    result = subprocess.run([sys.executable, str(ROOT / "stages" / "prepare.py")], cwd=tmp_path,
                            capture_output=True, text=True)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "data.test_size" in lines[0], result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "params.yaml"]
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["embedded"]
