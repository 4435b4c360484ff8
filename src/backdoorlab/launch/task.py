"""One launcher task: `dvc repro <stage>` in a private, clean checkout of the launched commit.

Why a checkout per task: DVC holds one lock per workspace, so stages cannot run side by side in
the user's workspace, and a remote node has no workspace at all. Each task clones the commit,
points DVC at the shared cache (a shared directory, or a DVC remote), and reproduces its stage.
Upstream stages that other tasks finished are restored from DVC's run-cache ("is cached -
skipping run"), so only the target's command runs. Free of Ray: the launcher wraps `run_task` as a
Ray task, and the tests can call it directly.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

TAIL_LINES = 15
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs; plain data, so Ray can ship it to any node."""

    stage: str  # a `dvc repro` target, e.g. defend@badnets-sft
    source: str  # what `git clone` reads: the workspace path (shared filesystem) or a git URL
    commit: str
    threads: int  # torch/OpenMP threads: the CPUs Ray gave the task
    cache_dir: str | None = None  # shared DVC cache directory (None with `remote`)
    remote: str | None = None  # DVC remote that carries the run-cache instead of a shared directory
    scratch: str | None = None  # where checkouts go (default: the node's temp directory)
    keep: bool = False  # leave the checkout behind, for debugging


@dataclass(frozen=True)
class TaskResult:
    stage: str
    ok: bool
    seconds: float
    executed: bool  # the stage's own command ran (False: restored from the run-cache or up to date)
    tail: str  # the last lines of the task's output (why it failed)
    host: str


class StepFailed(RuntimeError):
    """A setup or DVC command failed; the message is its last lines of output."""


def _step(args: list[str], cwd: Path, env: dict[str, str], check: bool = True) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if check and result.returncode != 0:
        lines = result.stdout.strip().splitlines()[-TAIL_LINES:]
        raise StepFailed(f"`{' '.join(args[:4])}` exited with {result.returncode}:\n" + "\n".join(lines))
    return result.stdout


def task_environment(threads: int, checkout: Path) -> dict[str, str]:
    """The stage's environment: this Python first on PATH (stages run `python`), the checkout's
    own sources importable, one BLAS/OpenMP thread per CPU the task was given, no analytics."""
    env = dict(os.environ)  # keeps CUDA_VISIBLE_DEVICES, which Ray sets for GPU tasks
    bin_dir = str(Path(sys.executable).parent)
    env["PATH"] = bin_dir + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(checkout / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update({name: str(threads) for name in THREAD_VARIABLES})
    env["DVC_NO_ANALYTICS"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # __pycache__ in a source dep would change its hash (.dvcignore too)
    return env


def prepare_checkout(spec: TaskSpec, where: Path, env: dict[str, str]) -> None:
    """Clone the commit and share the cache: a clean tree, so the task sees what was committed."""
    shared = ["--shared"] if Path(spec.source).is_dir() else []  # borrow objects, copy nothing
    _step(["git", "clone", "--quiet", "--no-checkout", *shared, spec.source, str(where)], where.parent, env)
    _step(["git", "checkout", "--quiet", "--detach", spec.commit], where, env)
    dvc = [sys.executable, "-m", "dvc"]
    if spec.cache_dir:  # what `dvc cache dir --local` writes, without a second DVC start-up (~1 s);
        # links, not copies, for the upstream outputs it restores (DVC makes them read-only, and
        # removes a stage's own outputs before running it), falling back to copies across devices
        (where / ".dvc" / "config.local").write_text(
            f'[cache]\n    dir = {spec.cache_dir}\n    type = "reflink,hardlink,copy"\n')
    if spec.remote:
        _step([*dvc, "remote", "default", "--local", spec.remote], where, env)
        _step([*dvc, "fetch", "--run-cache"], where, env, check=False)  # objects of unbuilt stages: absent


def reproduce(spec: TaskSpec, where: Path, env: dict[str, str]) -> str:
    """`dvc repro <stage>` (with its upstream, restored from the run-cache); push results to a remote."""
    dvc = [sys.executable, "-m", "dvc"]
    output = _step([*dvc, "repro", *(["--pull"] if spec.remote else []), spec.stage], where, env)
    if spec.remote:
        output += _step([*dvc, "push", "--run-cache"], where, env)
    return output


def run_task(spec: TaskSpec) -> TaskResult:
    """Run one stage in its own checkout; never raises for a failing stage, it reports it."""
    started = time.perf_counter()
    if spec.scratch:
        Path(spec.scratch).mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="backdoorlab-task-", dir=spec.scratch))
    where = scratch / "repo"
    env = task_environment(spec.threads, where)
    try:
        prepare_checkout(spec, where, env)
        output = reproduce(spec, where, env)
        executed = re.search(rf"Running stage '{re.escape(spec.stage)}'", output) is not None
        return TaskResult(spec.stage, True, time.perf_counter() - started, executed,
                          "\n".join(output.strip().splitlines()[-TAIL_LINES:]), socket.gethostname())
    except (StepFailed, OSError) as error:
        return TaskResult(spec.stage, False, time.perf_counter() - started, True, str(error), socket.gethostname())
    finally:
        if not spec.keep:
            shutil.rmtree(scratch, ignore_errors=True)
