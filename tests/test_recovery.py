"""Recovering from an interrupted `dvc repro`, as README-troubleshooting.md describes it.

DVC 3.67 rewrites `dvc.lock` in place (`open(path, "w+")`, not a temporary file and a rename),
so a run killed while it writes leaves the file empty or cut short. Depending on where the cut
falls, every later `dvc repro` either stops with "'./dvc.lock' validation failed" / "is invalid",
or reads the shorter file as valid and re-runs every stage whose entry was lost. Either way
`git checkout dvc.lock` restores the committed record, after which DVC finds the workspace up to
date again. The repo lock: only a live process holding `.dvc/tmp/lock` blocks DVC ("Unable to
acquire lock"); the file itself, left behind, is harmless.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinyrepo import dvc, env, run

VOLATILE = {"seconds"}  # wall times: differ between two runs of the same computation


def stable(value: object) -> object:
    """`value` without its wall-time keys, at any depth."""
    if isinstance(value, dict):
        return {k: stable(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v) for v in value]
    return value


def summary(repo: Path) -> object:
    return stable(json.loads((repo / "reports" / "summary.json").read_text()))


def cut_empty(lock: str) -> str:
    """Killed right after DVC opened the file for writing."""
    return ""


def cut_inside_a_hash(lock: str) -> str:
    """Killed mid-write: the last line ends inside an md5 value."""
    at = lock.index("md5: ", len(lock) // 3) + len("md5: ") + 1
    return lock[:at]


@pytest.mark.parametrize("cut", [cut_empty, cut_inside_a_hash])
def test_truncated_lock_fails_until_git_checkout(tiny_repo, cut):
    before = summary(tiny_repo)
    lock = tiny_repo / "dvc.lock"
    lock.write_text(cut(lock.read_text()))
    failed = dvc("repro", cwd=tiny_repo, check=False)
    assert failed.returncode != 0
    assert "'./dvc.lock' validation failed" in failed.stdout + failed.stderr
    run(["git", "checkout", "dvc.lock"], tiny_repo)
    output = dvc("repro", cwd=tiny_repo).stdout
    assert "Running stage" not in output and "Data and pipelines are up to date." in output
    assert summary(tiny_repo) == before


def test_lock_cut_between_stages_reads_as_valid_and_would_rerun(tiny_repo):
    """The silent case: no error, but the stages whose entries were lost count as changed."""
    lock = tiny_repo / "dvc.lock"
    text = lock.read_text()
    lock.write_text(text[:text.index("\n  report:\n") + 1])
    status = dvc("status", "--with-deps", "dvc.yaml", cwd=tiny_repo).stdout  # the default run (not full/dvc.yaml)
    assert status.startswith("report:"), status
    run(["git", "checkout", "dvc.lock"], tiny_repo)
    assert "Data and pipelines are up to date." in dvc("status", "--with-deps", "dvc.yaml", cwd=tiny_repo).stdout


HOLD_LOCK = """
import sys, time, zc.lockfile
lock = zc.lockfile.LockFile(sys.argv[1])  # what DVC itself takes around a command
print("held", flush=True)
time.sleep(60)
"""


def test_only_a_held_repo_lock_blocks(tiny_repo):
    lock = tiny_repo / ".dvc" / "tmp" / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    lock.write_text("12345\n")  # left behind by a killed process: no one holds it
    assert "up to date" in dvc("repro", cwd=tiny_repo).stdout
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(lock)], env=env(),
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = dvc("repro", cwd=tiny_repo, check=False)
        assert blocked.returncode != 0
        assert "Unable to acquire lock" in blocked.stdout + blocked.stderr
        assert lock.read_text().strip() == str(holder.pid)  # who holds it: `cat .dvc/tmp/lock`
    finally:
        holder.kill()
        holder.wait()
    assert "up to date" in dvc("repro", cwd=tiny_repo).stdout
