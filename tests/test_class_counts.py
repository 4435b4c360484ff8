"""The default grid, end to end through `dvc repro`, on image trees of 2, 3 and 43 classes: the
pipeline makes no assumption of ten classes (MIA features, transfer tasks, per-class outputs).

Each tree is a copy of the repository with the tiny profile over `data=image_folder`, at one
seed and with fewer defenses (every stage kind of the default run still runs). The three runs are started together: a tiny stage's time is mostly its Python start-up, so
two cores run the three in about the time of two.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import tinyrepo
from backdoorlab.compose import compose_params
from backdoorlab.snapshot import copy_sources

from conftest import ROOT

CLASS_COUNTS = (2, 3, 43)
SIDE = 16


def class_tree(root: Path, classes: int, images: int) -> None:
    """``images`` PNGs in ``classes`` folders, each class a colour of its own with pixel noise (a
    task the tiny model can learn a little of)."""
    rng = np.random.default_rng(classes)
    colours = rng.integers(30, 226, (classes, 3))
    for i in range(images):
        label = i % classes
        pixels = np.clip(colours[label] + rng.normal(0, 25, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
        folder = root / f"class_{label:03d}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def prepared_copy(dst: Path, classes: int) -> Path:
    """A copy of the sources whose params are the tiny profile on a ``classes``-class tree: one seed,
    and of the defenses one fine-tuning (FT, probed by every sequela attack) and D3 (its own loss)."""
    images = max(300, 12 * classes)
    class_tree(dst.parent / f"tree{classes}", classes, images)
    copy_sources(ROOT, dst)
    tinyrepo.use_profile(dst, "tiny")
    held_out = images // 6
    compose_params(dst / "params.yaml", [
        "data=image_folder", f"data.options.root={dst.parent / f'tree{classes}'}", f"data.options.image_size={SIDE}",
        f"data.options.cache_dir={dst.parent / f'cache{classes}'}", f"data.test_size={held_out}",
        f"data.shadow_size={held_out}", "grid.seeds=[0]", "grid.defenses=[none,ft,d3]", "grid.main=[none,ft]",
        "landscape.defenses=[ft,d3]"], root=dst)
    tinyrepo.run([sys.executable, "scripts/dag.py"], dst)
    tinyrepo.run(["git", "init", "-q"], dst)
    return dst


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[int, Path]:
    """Each class count's reproduced copy (the three `dvc repro` run side by side)."""
    base = tmp_path_factory.mktemp("class_counts")
    repos = {classes: prepared_copy(base / f"repo{classes}", classes) for classes in CLASS_COUNTS}
    started = {classes: subprocess.Popen([str(tinyrepo.BIN / "dvc"), "repro"], cwd=repo, env=tinyrepo.env(),
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
               for classes, repo in repos.items()}
    for classes, process in started.items():
        output, _ = process.communicate()
        assert process.returncode == 0, f"{classes} classes: dvc repro failed:\n{output[-4000:]}"
    return repos


@pytest.mark.parametrize("classes", CLASS_COUNTS)
def test_the_default_grid_runs_end_to_end_on_any_class_count(runs, classes):
    repo = runs[classes]
    data = json.loads((repo / "reports/records/data.json").read_text())
    assert data["num_classes"] == classes and len(data["train_class_counts"]) == classes
    cells = json.loads((repo / "reports/summary.json").read_text())["badnets"]
    assert set(cells) == {"none", "ft", "d3"}
    for name, cell in cells.items():
        assert 0 <= cell["ca"] <= 1 and 0 <= cell["asr"] <= 1, (name, cell)
    membership = (repo / "reports/tables/membership_other.md").read_text()
    assert "mia_shadow" in membership  # its top-k features: two on a two-class task
    status = tinyrepo.dvc("status", "--with-deps", "dvc.yaml", cwd=repo).stdout  # the whole default run
    assert "up to date" in status, status
