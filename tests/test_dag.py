"""The DAG's structure: the full matrix's stages are the default run's, with another matrix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stages(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["stages"]


def test_full_matrix_files_are_generated_from_the_root_file():
    """full/*/dvc.yaml repeat the root's stages with other matrices (DVC has no include): they are
    written by scripts/full_dag.py, so a dependency or param added to the root cannot be forgotten."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "full_dag.py"), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_full_matrix_blocks_cover_every_cell_outside_the_default_run_once():
    cells = []
    for path in sorted((ROOT / "full").glob("*/dvc.yaml")):
        for name, stage in stages(path).items():
            if name in ("defend", "sequela"):
                matrix = stage["matrix"]
                cells.append((name, matrix.get("paradigm", matrix.get("regime")), matrix["attack"],
                              matrix.get("defense", matrix.get("cleanser"))))
            records = {"paradigms": "records/paradigms/", "regimes": "records/regimes/"}.get(path.parent.name, "records/full/")
            assert all(records in out for out in outs(stage) if out.startswith("reports/records")), name
    new, more = "${grid.more_attacks}", "${grid.more_defenses}"
    victims = ("${grid.paradigms}", "${grid.paradigm_attacks}", "${grid.main}")
    regime_victims = ("${grid.regimes}", "${grid.regime_attacks}", "${grid.regime_defenses}")
    assert sorted(cells, key=str) == sorted([
        ("defend", None, new, "${grid.defenses}"), ("sequela", None, new, "${grid.main}"),
        ("defend", None, "${grid.attacks}", more), ("sequela", None, "${grid.attacks}", more),
        ("defend", None, new, more), ("sequela", None, new, more),
        ("defend", *victims), ("sequela", *victims),
        ("defend", *regime_victims), ("sequela", *regime_victims),
        ("sequela", None, "${grid.cleansing_attacks}", "${grid.cleansers}")], key=str)


def test_paradigm_stages_list_only_their_own_part_of_the_paradigm():
    """Each pre-training stage reads one part of `paradigms.<name>`, so a downstream change never
    re-runs pre-training or the implant (tests/test_paradigm_pipeline.py runs it)."""
    block = stages(ROOT / "full" / "paradigms" / "dvc.yaml")
    parts = {name: {p.rsplit(".", 1)[1] for p in block[name]["params"] if p.startswith("paradigms.")}
             for name in ("upstream", "implant", "counterpart", "downstream")}
    assert parts == {"upstream": {"method", "task", "pretrain"}, "implant": {"method", "task", "implant"},
                     "counterpart": {"method", "task", "downstream"}, "downstream": {"method", "task", "downstream"}}
    assert not any(p.startswith("defenses") for name in parts for p in block[name]["params"])


def outs(stage: dict) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in stage.get("outs", [])]


def test_every_committed_report_is_restorable_from_the_run_cache():
    """DVC's run-cache never restores an uncached plain `outs:` entry, so every `cache: false`
    output must be declared under `metrics:` or `plots:` (../shared DVC notes)."""
    for path in [ROOT / "dvc.yaml", *sorted((ROOT / "full").glob("**/dvc.yaml"))]:
        for name, stage in stages(path).items():
            for out in stage.get("outs", []):
                options = next(iter(out.values())) if isinstance(out, dict) else {}
                assert options.get("cache", True), f"{path.name}:{name}: uncached plain out {out}"
