"""The DVC pipeline end to end on the tiny profile, in a temporary copy of the repository:
a cold `dvc repro` builds every cell, a second does nothing, `dvc exp run -S defenses.sft.*`
re-runs only the sft cells and what depends on them, reverting the change restores every stage
from DVC's run-cache without running one, the same seed gives the same metrics, and a defense
that wrecks the model is flagged as collapsed in the records and the tables."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
import yaml

import tinyrepo
from backdoorlab.graph import blocks
from backdoorlab.io import load_tensors

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TINY = tinyrepo.TINY


def run(args: list[str], cwd: Path) -> str:
    """Run a command in the tiny repository with the environment it was built with (one thread
    per stage: a stage re-run with another thread count rounds its float sums differently)."""
    result = tinyrepo.run(args, cwd)
    return result.stdout + result.stderr


def stages_run(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


@pytest.fixture(scope="module")
def repo(tiny_repo_base, tmp_path_factory) -> Path:
    """A private copy of the session's tiny repository: sources and results of a cold `dvc repro`
    with the tiny profile as params.yaml, committed (conftest's `tiny_repo_base`)."""
    return tinyrepo.clone(tiny_repo_base, tmp_path_factory.mktemp("pipeline") / "repo")


def summary(repo: Path) -> dict:
    return json.loads((repo / "reports" / "summary.json").read_text())


SEEDS = TINY["grid"]["seeds"]
SEED = SEEDS[0]


def at(block: str, stage: str, victim: str, seed: int) -> str:
    """A stage's DVC address: a victim's stages at one seed live in a file of their own."""
    return blocks.address(block, stage, (victim, seed))


def test_cold_repro_builds_every_cell_and_the_report(repo):
    headline = summary(repo)  # {attack: {defense: {ca, ca_ci, asr, asr_ci, der, seeds, verdict}}}
    assert set(headline) == set(TINY["grid"]["attacks"])
    for attack, cells in headline.items():
        assert set(cells) == set(TINY["grid"]["defenses"])
        for name, cell in cells.items():
            assert set(cell) == {"ca", "ca_ci", "asr", "asr_ci", "der", "seeds", "verdict"}, name
            assert 0 <= cell["ca"] <= 1 and 0 <= cell["asr"] <= 1, name
    for table in ("main.md", "main.csv", "cells.csv", "cells_by_seed.csv", "calibration.md"):
        assert (repo / "reports" / "tables" / table).stat().st_size > 0
    for figure in ("defenses_ca_asr.png", "calibration_ft_cal.png"):
        assert (repo / "reports" / "figures" / figure).read_bytes()[:4] == b"\x89PNG"


def test_each_cell_reports_the_defenders_validation_accuracy(repo):
    record = json.loads((repo / f"reports/records/cells/badnets-ft_cal/s{SEED}/defense.json").read_text())
    assert 0 < record["val_acc_before"] <= 1 and 0 <= record["val_acc"] <= 1
    calibration = record["calibration"]
    assert calibration["knob"] == "lr" and calibration["chosen"] in (0.001, 0.01, 0.1)
    assert all({"value", "val_acc", "diverged", "ca", "asr"} <= set(t) for t in calibration["trials"])


def test_second_repro_does_nothing(repo):
    output = run([str(BIN / "dvc"), "repro"], repo)
    assert stages_run(output) == set()
    assert "up to date" in output


def test_changing_an_sft_param_reruns_only_the_sft_cells(repo):
    output = run([str(BIN / "dvc"), "exp", "run", "-S", "defenses.sft.peak_lr_1=0.5"], repo)
    ran = stages_run(output)
    assert ran, output
    assert all(stage == "report" or re.search(r"-sft-s\d+$", stage) or ":landscape@" in stage for stage in ran), ran
    attacks = TINY["grid"]["attacks"]
    assert {at("default", f"{stage}@{a}-sft-s{s}", a, s) for stage in ("defend", "sequela") for a in attacks
            for s in SEEDS} | {"report"} <= ran


def test_full_matrix_adds_its_cells_and_a_report_of_every_cell(repo):
    """More attacks (their own poison, train, baseline and landscape stages; here LF, whose trigger
    the poison stage fits and every later stage reloads) x every defense, more defenses x every
    attack, the training-time defenses (retrain) x every attack, and a report of all of them."""
    output = run([str(BIN / "dvc"), "repro", "full/dvc.yaml"], repo)
    grid = TINY["grid"]
    attacks, new = grid["attacks"], grid["more_attacks"]
    defenses, main, more = grid["defenses"], grid["main"], grid["more_defenses"]
    cells = {("defend", a, d) for a in new for d in defenses + more} | {("defend", a, d) for a in attacks for d in more}
    cells |= {("sequela", a, d) for a in new for d in main + more} | {("sequela", a, d) for a in attacks for d in more}
    # a cell with a default-run defense runs at every seed, one with an extra defense at the first
    expected = {at("defenses" if a in attacks else "both" if d in more else "attacks", f"{stage}@{a}-{d}-s{s}", a, s)
                for stage, a, d in cells for s in (SEEDS if d in defenses else SEEDS[:1])}
    expected |= {at("attacks", f"{stage}@{a}-s{s}", a, s) for stage in ("poison", "train", "reinject_baseline")
                 for a in new for s in SEEDS} | {at("attacks", f"landscape@{a}", a, SEED) for a in new} | {"full/dvc.yaml:report"}
    cleansers = grid["cleansers"]  # training-time defenses: retrained models, in the same report
    expected |= {at("cleansing", f"{stage}@{a}-{c}-s{SEED}", a, SEED) for stage in ("retrain", "sequela")
                 for a in attacks + new for c in cleansers}
    assert stages_run(output) == expected
    full = json.loads((repo / "reports" / "full" / "summary.json").read_text())
    assert set(full) == set(attacks + new)
    assert all(set(cells) == set(defenses + more + cleansers) for cells in full.values())
    retrained = json.loads((repo / f"reports/records/full/cleansing/cells/badnets-spectral/s{SEED}/defense.json").read_text())
    assert retrained["notes"]["flagged"] > 0 and 0 <= retrained["notes"]["precision"] <= 1
    # LF's trigger, fitted by the poison stage, travelled through train to the defense cells: they
    # rebuild the same triggered test set (the tiny profile is too small to plant it, hence no ASR bound)
    perturbation = load_tensors(repo / "models" / "lf" / f"s{SEED}" / "trigger.safetensors")["perturbation"]
    assert perturbation.abs().max() > 0
    trained = json.loads((repo / f"reports/records/full/attacks/train/lf/s{SEED}/metrics.json").read_text())
    undefended = json.loads((repo / f"reports/records/full/attacks/cells/lf-none/s{SEED}/defense.json").read_text())
    assert undefended["asr"] == trained["asr"]
    # the attacks block's own report: every attack x the default run's defenses, nothing else to run
    output = run([str(BIN / "dvc"), "repro", "full/attacks/dvc.yaml:report"], repo)
    assert stages_run(output) == {"full/attacks/dvc.yaml:report"}
    by_attack = json.loads((repo / "reports" / "attacks" / "summary.json").read_text())
    assert set(by_attack) == set(attacks + new) and all(set(c) == set(defenses) for c in by_attack.values())
    assert set(summary(repo)["badnets"]) == set(defenses)  # the default report is untouched
    assert set(summary(repo)) == set(attacks)
    assert tinyrepo.undeclared_imports(repo) == {}  # every block's stages declare every library file they ran


def test_a_report_missing_a_seed_names_the_cell_and_averages_nothing(tiny_repo):
    """A cell short of one of its configured seeds stops the report with one line naming the
    missing record and the stage that writes it; no table is written from what is there."""
    seed = TINY["grid"]["seeds"][-1]
    (tiny_repo / f"reports/records/cells/badnets-sft/s{seed}/defense.json").unlink()
    before = (tiny_repo / "reports/tables/main.md").read_text()
    result = tinyrepo.run([sys.executable, "stages/report.py"], tiny_repo, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"badnets-sft/s{seed}/defense.json: missing (run `dvc repro defend@badnets-sft-s{seed}`" in result.stderr
    assert (tiny_repo / "reports/tables/main.md").read_text() == before


def test_reverting_a_param_restores_every_stage_from_the_run_cache(repo):
    """After the sft experiment above, the original params: DVC restores each stage it re-ran
    from the run-cache ("is cached - skipping run") and executes no stage command."""
    run(["git", "checkout", "params.yaml"], repo)
    output = run([str(BIN / "dvc"), "repro"], repo)
    assert stages_run(output) == set(), output
    assert "is cached - skipping run" in output


def test_same_seed_gives_identical_metrics(repo):
    """Re-running a training and a defense stage by hand reproduces their metrics exactly.
    (Last: it rewrites outputs, with new wall times, that other stages depend on.)"""
    train_metrics = repo / f"reports/records/train/badnets/s{SEED}/metrics.json"
    cell = repo / f"reports/records/cells/badnets-sft/s{SEED}/defense.json"
    before = [train_metrics.read_bytes(), json.loads(cell.read_text())]
    run([sys.executable, "stages/train.py", "badnets"], repo)
    run([sys.executable, "stages/defend.py", "badnets", "sft"], repo)
    after = [train_metrics.read_bytes(), json.loads(cell.read_text())]
    assert before[0] == after[0]  # byte-identical: defense cells depend on this file
    before[1].pop("seconds"), after[1].pop("seconds")
    assert before[1] == after[1]


def test_a_defense_that_wrecks_the_model_is_flagged_not_hidden(repo):
    """Fine-tuning at an absurd LR sends the model to chance: ASR 0, which a table of CA / ASR
    alone would show as "backdoor removed". The cell must say collapsed, everywhere."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["defenses"]["ft"]["lr"] = 2.0
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    run([sys.executable, "stages/defend.py", "badnets", "ft"], repo)
    run([sys.executable, "stages/report.py"], repo)
    record = json.loads((repo / f"reports/records/cells/badnets-ft/s{SEED}/defense.json").read_text())
    assert record["collapsed"] and record["val_retained"] < 0.5, record
    assert summary(repo)["badnets"]["ft"]["verdict"].startswith("collapsed")
    main_row = next(line for line in (repo / "reports/tables/main.md").read_text().splitlines()
                    if line.startswith("| badnets"))
    ft_column = TINY["grid"]["main"].index("ft") + 2  # a leading empty field and the row label
    assert "(collapsed" in main_row.split("|")[ft_column], main_row
