"""The DAG's structure: the full matrix's stages are the default run's, with another matrix."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stages(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["stages"]


def test_full_matrix_cells_are_the_default_cells_with_another_matrix():
    """full/dvc.yaml repeats the root's `defend` and `sequela` stages (DVC has no include): only
    their matrix (grid.more_defenses) and working directory may differ, so a dependency or param
    added to one file cannot be forgotten in the other."""
    default, full = stages(ROOT / "dvc.yaml"), stages(ROOT / "full" / "dvc.yaml")
    for name in ("defend", "sequela"):
        as_default = yaml.safe_load(yaml.safe_dump(full[name]).replace("records/cells_more/", "records/cells/"))
        mine = {k: v for k, v in as_default.items() if k not in ("matrix", "wdir")}
        theirs = {k: v for k, v in default[name].items() if k != "matrix"}
        assert mine == theirs, name
        assert full[name]["wdir"] == ".." and full[name]["matrix"]["defense"] == "${grid.more_defenses}"
        assert all("records/cells/" not in str(out) for out in full[name]["outs"])


def test_every_committed_report_is_restorable_from_the_run_cache():
    """DVC's run-cache never restores an uncached plain `outs:` entry, so every `cache: false`
    output must be declared under `metrics:` or `plots:` (../shared DVC notes)."""
    for path in (ROOT / "dvc.yaml", ROOT / "full" / "dvc.yaml"):
        for name, stage in stages(path).items():
            for out in stage.get("outs", []):
                options = next(iter(out.values())) if isinstance(out, dict) else {}
                assert options.get("cache", True), f"{path.name}:{name}: uncached plain out {out}"
