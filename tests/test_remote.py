"""The exact artefacts for a reviewer: `dvc push` to a remote, `dvc pull` on another checkout.

Results reproduce within their intervals on any CPU, but bit for bit only on the machine's kernel
path; a reviewer who wants the committed models themselves pulls them from the remote the authors
pushed to (README, "Exact artefacts"). Here the remote is a local folder, as a shared drive would be.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import tinyrepo


def test_pull_on_a_fresh_clone_gives_the_committed_models_bit_for_bit(tiny_repo, tmp_path):
    remote = tmp_path / "remote"
    tinyrepo.dvc("remote", "add", "-d", "store", str(remote), cwd=tiny_repo)
    tinyrepo.commit(tiny_repo, "a remote for the artefacts")
    tinyrepo.dvc("push", "--with-deps", "dvc.yaml", cwd=tiny_repo)  # the default run's outputs (the blocks ran not here)
    assert any(remote.rglob("*")), "dvc push wrote nothing"

    clone = tmp_path / "reviewer"
    subprocess.run(["git", "clone", "-q", str(tiny_repo), str(clone)], check=True)
    model = next(tiny_repo.glob("models/badnets/s*/backdoored.safetensors")).relative_to(tiny_repo)
    assert not (clone / model).exists()  # a fresh clone has the lock, not the models
    tinyrepo.dvc("pull", "--with-deps", "dvc.yaml", cwd=clone)
    assert (clone / model).read_bytes() == (tiny_repo / model).read_bytes()
    status = tinyrepo.dvc("status", "--with-deps", "dvc.yaml", cwd=clone).stdout
    assert "up to date" in status, status  # every stage's outputs match the lock: nothing to recompute
