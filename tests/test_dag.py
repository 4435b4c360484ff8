"""The DAG's structure: generated from params.yaml and the stages' imports, every cell once, each
stage depending on exactly the library files it runs (tests/test_code_deps.py checks them at run time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from backdoorlab.config import load_params
from backdoorlab.fidelity import fidelity_cells, fidelity_settings
from backdoorlab.graph import blocks
from backdoorlab.graph.stages import MODEL_TEMPLATE
from backdoorlab.layout import sized_instance
from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]
PARAMS = load_params(ROOT / "params.yaml")
FILES = [ROOT / "dvc.yaml", *sorted((ROOT / "full").glob("**/dvc.yaml"))]


def stages(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["stages"]


def cells_of(path: Path, name: str) -> dict:
    stage = stages(path).get(name, {})
    return stage.get("foreach", {})


def test_pipeline_files_are_generated_from_params_and_imports():
    """dvc.yaml and full/*/dvc.yaml are written by scripts/dag.py, so a grid, a seed or an import
    added to the code cannot be forgotten in a dependency list."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "dag.py"), "--check"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_cell_runs_once_at_its_seeds():
    grid = PARAMS.grid
    defend = {key for path in FILES for key in cells_of(path, "defend")}
    standalone = {f"{a}-{d}-s{s}" for a in grid.attacks + grid.more_attacks for d in grid.defenses + grid.more_defenses
                  for s in grid.seeds_of(a, d)}
    victims = {f"{v}-{d}-s{grid.seeds[0]}" for v in grid.victims() for d in grid.main}
    regimes = {f"{v}-{d}-s{grid.seeds[0]}" for v in grid.regime_victims() for d in grid.regime_defenses}
    settings = fidelity_settings(PARAMS)
    fidelity = {f"{c.attack}-{sized_instance(c.defense, c.fraction)}-s{s}" for c in fidelity_cells(PARAMS, settings)
                if not c.in_default_run for s in grid.seeds}
    assert sorted(defend) == sorted(standalone | victims | regimes | fidelity)
    assert sum(len(cells_of(path, "defend")) for path in FILES) == len(defend)  # no cell in two blocks
    default_run = [ROOT / blocks.pipeline_file("default", ("badnets", s)) for s in grid.seeds]
    assert {f"badnets-{d}-s{s}" for d in grid.defenses for s in grid.seeds} <= {
        key for path in default_run for key in cells_of(path, "defend")}


def test_the_lead_columns_run_at_every_seed_and_the_rest_at_the_first():
    grid = PARAMS.grid
    cells = {key for path in FILES for key in cells_of(path, "defend")}
    for defense in grid.lead_columns:
        assert {f"sig-{defense}-s{s}" for s in grid.seeds} <= cells
    other = next(d for d in grid.more_defenses if d not in grid.lead_columns)
    assert {k for k in cells if k.startswith(f"sig-{other}-")} == {f"sig-{other}-s{grid.seeds[0]}"}


def test_a_defense_cell_depends_on_its_own_method_not_on_the_others():
    """defend@badnets-nc-s0 runs defenses/nc.py (and its imports), never d3.py: an edit to one
    defense re-runs only that defense's cells."""
    first = PARAMS.grid.seeds[0]
    nc = cells_of(ROOT / blocks.pipeline_file("defenses", ("badnets", first)), "defend")[f"badnets-nc-s{first}"]
    assert "src/backdoorlab/defenses/nc.py" in nc["code"]
    assert not any(f.startswith("src/backdoorlab/defenses/") and f.endswith(("d3.py", "sft.py", "fp.py"))
                   for f in nc["code"])
    badnets = ROOT / blocks.pipeline_file("default", ("badnets", first))
    d3_cal = cells_of(badnets, "defend")[f"badnets-d3_cal-s{first}"]
    assert {"src/backdoorlab/defenses/d3.py", "src/backdoorlab/defenses/weight_anchor.py"} <= set(d3_cal["code"])
    shared = stages(badnets)["defend"]["do"]["deps"]
    assert "src/backdoorlab/defenses/calibration.py" in shared and "src/backdoorlab/config.py" in shared
    assert not any("/defenses/d3.py" in dep or "/attacks/badnets.py" in dep for dep in shared)


def test_prepare_depends_on_the_data_family_and_nothing_above_it():
    deps = stages(ROOT / "dvc.yaml")["prepare"]["deps"]
    assert "src/backdoorlab/data" in deps and "src/backdoorlab/config.py" in deps
    for family in ("defenses", "attacks", "paradigms", "cleansing", "reporting", "sequela", "training", "models"):
        assert not any(dep.startswith(f"src/backdoorlab/{family}/") for dep in deps), family


def test_every_stage_that_builds_a_model_follows_model_arch():
    """`dvc exp run -S model=<arch>` changes the templated model dependency with the params."""
    for path in FILES:
        for name, stage in stages(path).items():
            body = stage.get("do", stage)
            if "model" in body.get("params", []) and name != "report":  # the report only names the model
                assert MODEL_TEMPLATE in body["deps"], f"{path.name}:{name}"


def test_paradigm_stages_list_only_their_own_part_of_the_paradigm():
    """Each pre-training stage reads one part of `paradigms.<name>`, so a downstream change never
    re-runs pre-training or the implant (tests/test_paradigm_pipeline.py runs it)."""
    block = {name: stage for path in FILES if blocks.block_of(str(path.relative_to(ROOT))) == "paradigms"
             for name, stage in stages(path).items()}
    parts = {name: {p.rsplit(".", 1)[1] for p in block[name]["do"]["params"] if p.startswith("paradigms.")}
             for name in ("upstream", "implant", "counterpart", "downstream")}
    assert parts == {"upstream": {"method", "task", "pretrain"}, "implant": {"method", "task", "implant"},
                     "counterpart": {"method", "task", "downstream"}, "downstream": {"method", "task", "downstream"}}
    assert not any(p.startswith("defenses") for name in parts for p in block[name]["do"]["params"])


def outs(body: dict) -> list[str]:
    return [next(iter(o)) if isinstance(o, dict) else o for o in body.get("outs", [])]


def test_every_committed_report_is_restorable_from_the_run_cache():
    """DVC's run-cache never restores an uncached plain `outs:` entry, so every `cache: false`
    output must be declared under `metrics:` or `plots:` (../shared DVC notes)."""
    for path in FILES:
        for name, stage in stages(path).items():
            for out in stage.get("do", stage).get("outs", []):
                options = next(iter(out.values())) if isinstance(out, dict) else {}
                assert options.get("cache", True), f"{path.name}:{name}: uncached plain out {out}"


def test_each_victim_at_each_seed_has_its_own_pipeline_file():
    """DVC rewrites a stage's whole dvc.lock after running it, so each victim's stages at one seed
    live in a file of their own, full/<block>/<victim>/s<k>/dvc.yaml: no file mixes victims or
    seeds, and a block's own file holds only stages of no victim (data, pre-training, report)."""
    for path in FILES:
        items = [item for stage in stages(path).values() for item in stage.get("foreach", {}).values()]
        folder = path.parent.relative_to(ROOT).parts
        if len(folder) == 4:  # full, block, victim, seed
            assert {(item["victim"], item["seed"]) for item in items} == {(folder[2], int(folder[3][1:]))}, path
        else:
            assert not any("victim" in item for item in items), path


def test_a_pipeline_file_no_longer_generated_is_removed(tmp_path):
    """A seed taken off grid.seeds, or a victim off the grid, must not leave its file behind: DVC
    reads every dvc.yaml. The victim's folder goes with its last seed."""
    copy_sources(ROOT, tmp_path)
    orphans = [tmp_path / blocks.pipeline_file("default", group) for group in [("badnets", 9), ("gone", 0)]]
    for orphan in orphans:
        orphan.parent.mkdir(parents=True)
        orphan.write_text(blocks.HEADER.format(what="an old victim or seed") + "stages: {}\n")
        (orphan.parent / "dvc.lock").write_text("schema: '2.0'\n")
    dag = [sys.executable, str(tmp_path / "scripts" / "dag.py")]
    check = subprocess.run([*dag, "--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "no longer generated: full/default/badnets/s9/dvc.yaml" in check.stderr, check.stderr
    subprocess.run(dag, check=True, capture_output=True)
    assert not any(orphan.parent.exists() for orphan in orphans)
    assert (tmp_path / "full/default/badnets/s0/dvc.yaml").is_file() and not (tmp_path / "full/default/gone").exists()
    assert subprocess.run([*dag, "--check"], capture_output=True, text=True).returncode == 0
