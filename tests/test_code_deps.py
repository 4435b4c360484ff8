"""Each stage depends on exactly the code it runs, checked where it counts: at run time and in `dvc status`.

Every stage the tiny repository ran logged the library files it imported (BACKDOORLAB_IMPORT_LOG,
pipeline/cli.py); each must be a declared dependency of that stage, or an edit to it would leave the
stage's results stale without DVC noticing. Conversely an edit to one defense makes only that
defense's cells stale, and an edit to config.py makes every stage stale.
"""

from __future__ import annotations

import json
from pathlib import Path

import tinyrepo
from dvc.repo import Repo
from tinyrepo import undeclared_imports

from backdoorlab.graph import blocks


def test_no_stage_imports_a_library_file_it_does_not_declare(tiny_repo_base):
    assert undeclared_imports(tiny_repo_base) == {}


def stale(repo: Path) -> set[str]:
    """The stages `dvc status` reports changed in the default run (dvc.yaml and, upstream of its
    report, its victims' files), by DVC address."""
    result = tinyrepo.dvc("status", "--json", "--with-deps", "dvc.yaml", cwd=repo)
    return set(json.loads(result.stdout or "{}"))


def test_a_one_defense_edit_makes_only_that_defenses_cells_stale(tiny_repo):
    path = tiny_repo / "src" / "backdoorlab" / "defenses" / "sft.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    changed = stale(tiny_repo)
    cells = {name for name in changed if name.rsplit(":", 1)[-1].startswith("defend@")}
    assert cells and all("-sft-" in name for name in cells), changed
    assert changed == cells, changed  # no other stage (prepare, train, other defenses, report) runs sft.py


def test_a_config_edit_makes_every_stage_stale(tiny_repo):
    path = tiny_repo / "src" / "backdoorlab" / "config.py"
    path.write_text(path.read_text() + "\n# an edit\n")
    with Repo(str(tiny_repo)) as dvc:
        every = {stage.name if stage.path_in_repo == "dvc.yaml" else f"{stage.path_in_repo}:{stage.name}"
                 for stage in dvc.index.stages if blocks.block_of(stage.path_in_repo) == "default"}
    assert stale(tiny_repo) == every
