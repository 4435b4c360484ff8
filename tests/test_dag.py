"""The DAG's structure: the full matrix's stages are the default run's, with another matrix."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def stages(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["stages"]


GRID_BLOCKS = {  # full/dvc.yaml's stage -> its matrix, which together cover every cell not in the default run
    "poison": {"attack": "${grid.more_attacks}"},
    "train": {"attack": "${grid.more_attacks}"},
    "reinject_baseline": {"attack": "${grid.more_attacks}"},
    "landscape": {"attack": "${grid.more_attacks}"},
    "defend_more_attacks": {"attack": "${grid.more_attacks}", "defense": "${grid.defenses}"},
    "defend_more_defenses": {"attack": "${grid.attacks}", "defense": "${grid.more_defenses}"},
    "defend_more_both": {"attack": "${grid.more_attacks}", "defense": "${grid.more_defenses}"},
    "sequela_more_attacks": {"attack": "${grid.more_attacks}", "defense": "${grid.main}"},
    "sequela_more_defenses": {"attack": "${grid.attacks}", "defense": "${grid.more_defenses}"},
    "sequela_more_both": {"attack": "${grid.more_attacks}", "defense": "${grid.more_defenses}"},
}


def as_default_run(stage: dict) -> dict:
    """A full-matrix stage with its records, previews and landscapes moved back to the default
    run's folders, and without the keys that may differ (matrix, wdir)."""
    text = yaml.safe_dump(stage).replace("records/full/", "records/").replace("reports/full/", "reports/")
    return {k: v for k, v in yaml.safe_load(text).items() if k not in ("matrix", "wdir")}


def test_full_matrix_stages_are_the_default_stages_with_another_matrix():
    """full/dvc.yaml repeats the root's stages (DVC has no include): only their matrix, working
    directory and record folders may differ, so a dependency or param added to one file cannot be
    forgotten in the other; and its blocks cover every cell outside the default run."""
    default, full = stages(ROOT / "dvc.yaml"), stages(ROOT / "full" / "dvc.yaml")
    assert set(full) == set(GRID_BLOCKS) | {"report"}
    for name, matrix in GRID_BLOCKS.items():
        root_name = name.split("_more_")[0]
        assert as_default_run(full[name]) == {k: v for k, v in default[root_name].items() if k != "matrix"}, name
        assert full[name]["wdir"] == ".." and full[name]["matrix"] == matrix, name
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in full[name].get("outs", [])]
        assert all("records/full/" in out for out in outs if out.startswith("reports/records")), name


def test_every_committed_report_is_restorable_from_the_run_cache():
    """DVC's run-cache never restores an uncached plain `outs:` entry, so every `cache: false`
    output must be declared under `metrics:` or `plots:` (../shared DVC notes)."""
    for path in (ROOT / "dvc.yaml", ROOT / "full" / "dvc.yaml"):
        for name, stage in stages(path).items():
            for out in stage.get("outs", []):
                options = next(iter(out.values())) if isinstance(out, dict) else {}
                assert options.get("cache", True), f"{path.name}:{name}: uncached plain out {out}"
