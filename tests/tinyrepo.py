"""A reproduced tiny-profile repository for tests that look at results as people do
(`dvc plots show`, recovery after an interrupted run).

Reproducing the tiny profile costs about a minute and a half on two cores, so it is done once per
session (conftest's `tiny_repo_base`) and each test gets its own `cp -a` copy (`tiny_repo`), which
it may break freely. The copy is a real git repository with the results committed, as a user's
checkout would be after `dvc repro && git commit`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dvc.repo import Repo

from backdoorlab.compose import CONF_DIR, CONFIG_NAME, compose_params, composed
from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]
TINY = composed(["profile=tiny"], ROOT)  # conf/profile/tiny.yaml over conf/config.yaml
BIN = Path(sys.executable).parent
GIT_ID = ["-c", "user.name=t", "-c", "user.email=t@t"]


def env() -> dict[str, str]:
    """The stages' `python` must be this venv's, and DVC must not phone home. One thread per
    stage, as each task of the Ray launcher has: float sums split over two threads round
    differently, so the launcher's results equal a sequential run's only at the same count."""
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


IMPORT_LOG = "import-log"  # beside the repository: each stage's imported library files (tests/test_code_deps.py)


def run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a command in `cwd`; with `check`, fail the test with its output if it fails. Every stage it
    runs logs the library files it imported to ``<cwd>/../import-log``."""
    result = subprocess.run(args, cwd=cwd, env={**env(), "BACKDOORLAB_IMPORT_LOG": str(cwd.parent / IMPORT_LOG)},
                            capture_output=True, text=True)
    if check:
        assert result.returncode == 0, (f"{' '.join(args)} failed ({result.returncode}):\n"
                                        f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


def dvc(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return run([str(BIN / "dvc"), *args], cwd, check)


def commit(repo: Path, message: str) -> None:
    run(["git", "add", "-A"], repo)
    run(["git", *GIT_ID, "commit", "-qm", message], repo)


def use_profile(repo: Path, profile: str) -> None:
    """Make ``profile`` the copy's default composition (so `dvc exp run -S ...` composes it too),
    write it to params.yaml, and generate the copy's pipeline files from it (`make dag`)."""
    config = repo / CONF_DIR / f"{CONFIG_NAME}.yaml"
    text = config.read_text()
    assert "  - profile: null" in text, f"{config}: no `profile: null` default to replace"
    config.write_text(text.replace("  - profile: null", f"  - profile: {profile}"))
    compose_params(repo / "params.yaml", root=repo)
    run([sys.executable, "scripts/dag.py"], repo)


def build(dst: Path) -> Path:
    """Copy the sources to `dst` with the tiny profile as the default composition, reproduce, commit."""
    copy_sources(ROOT, dst)
    use_profile(dst, "tiny")
    run(["git", "init", "-q"], dst)
    commit(dst, "tiny sources")
    dvc("repro", cwd=dst)
    commit(dst, "tiny results")
    return dst


def clone(base: Path, dst: Path) -> Path:
    """A private copy of a built repository (git history, DVC cache and outputs included)."""
    shutil.copytree(base, dst, symlinks=True)
    return dst


def with_block(base: Path, dst: Path, block: str, overrides: list[str] | None = None) -> Path:
    """A private copy of a built repository with one more pipeline file (``full/<x>/dvc.yaml``)
    reproduced; ``overrides`` (``key=value``, as `make params O=...`) are composed into its
    params.yaml, its pipeline files regenerated and committed first."""
    repo = clone(base, dst)
    if overrides:
        compose_params(repo / "params.yaml", overrides, root=repo)
        run([sys.executable, "scripts/dag.py"], repo)
        commit(repo, "overrides: " + " ".join(overrides))
    dvc("repro", block, cwd=repo)
    return repo


def declared(repo: Path) -> dict[str, tuple[str, set[str]]]:
    """``{command: (stage address, declared dependency paths relative to the repository)}`` for every
    stage of every pipeline file; a folder dependency declares every file under it."""
    out = {}
    with Repo(str(repo)) as dvc:
        for stage in dvc.index.stages:
            paths = set()
            for dep in stage.deps:
                path = Path(dep.fs_path)
                paths |= {str(f.relative_to(repo)) for f in path.rglob("*.py")} if path.is_dir() else {str(path.relative_to(repo))}
            out[stage.cmd.removeprefix("python ")] = (stage.addressing, paths)
    return out


def undeclared_imports(repo: Path) -> dict[str, list[str]]:
    """For every stage run logged beside ``repo``: the library files it imported but does not declare."""
    stages = declared(repo)
    missing = {}
    logs = sorted((repo.parent / IMPORT_LOG).glob("*.json"))
    assert logs, "no stage logged its imports"
    for log in logs:
        entry = json.loads(log.read_text())
        assert entry["command"] in stages, f"{entry['command']!r} is no stage's command"
        name, deps = stages[entry["command"]]
        lacking = sorted(set(entry["files"]) - deps)
        if lacking:
            missing[name] = lacking
    return missing
