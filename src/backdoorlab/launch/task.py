"""One launcher task: one stage, run once, in a private clean checkout of the launched commit.

Why a checkout per task: DVC holds one lock per workspace, so stages cannot run side by side in
the user's workspace, and a remote node has no workspace at all. Each task clones the commit and
points DVC at the shared cache (a shared directory, or a DVC remote).

Why not `dvc repro <stage>` there: it would walk every upstream stage, and where the committed
`dvc.lock` names outputs the cache lacks (a fresh clone, whose lock was written on another
machine), DVC runs the stage's command again instead of consulting the run-cache. So the task
replaces the checkout's locks with exactly the entries of the stages whose outputs it reads (the
coordinator hands over those the other tasks produced), checks those outputs out, and runs
`dvc repro --single-item <stage>`: with no lock entry of its own, the stage is restored from the
run-cache if some task ran it before, else run. Its new lock entry goes back to the coordinator.
Free of Ray: the launcher wraps `run_task` as a Ray task, and the tests can call it directly.
"""

from __future__ import annotations

import json
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
from typing import Any

import yaml

from backdoorlab.launch.plan import LockEntry, pipeline_files

TAIL_LINES = 15
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS")


@dataclass(frozen=True)
class TaskSpec:
    """Everything a worker needs; plain data, so Ray can ship it to any node."""

    stage: str  # a `dvc repro` target, e.g. report or full/default/badnets/s1/dvc.yaml:defend@...
    source: str  # what `git clone` reads: the workspace path (shared filesystem) or a git URL
    commit: str
    threads: int  # torch/OpenMP threads: the CPUs Ray gave the task
    cache_dir: str | None = None  # shared DVC cache directory (None with `remote`)
    remote: str | None = None  # DVC remote that carries the run-cache instead of a shared directory
    scratch: str | None = None  # where checkouts go (default: the node's temp directory)
    keep: bool = False  # leave the checkout behind, for debugging
    inputs: tuple[LockEntry, ...] = ()  # the lock entries of the stages whose outputs it reads


@dataclass(frozen=True)
class TaskResult:
    stage: str
    ok: bool
    seconds: float
    executed: bool  # the stage's own command ran (False: restored from the run-cache or up to date)
    tail: str  # the last lines of the task's output (why it failed)
    host: str
    lock: LockEntry | None = None  # the stage's new lock entry, for the tasks after it and the collect step
    setup: float = 0.0  # seconds before `dvc repro` started: clone, locks, checking the inputs out


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


def write_locks(where: Path, entries: tuple[LockEntry, ...]) -> None:
    """Replace every lock file of the checkout by one holding only ``entries``."""
    for lock in where.glob("**/dvc.lock"):
        lock.unlink()
    by_file: dict[str, dict[str, Any]] = {}
    for item in entries:
        by_file.setdefault(item.file, {})[item.name] = item.entry
    dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    for file, stages in by_file.items():
        (where / file).with_name("dvc.lock").write_text(
            yaml.dump({"schema": "2.0", "stages": stages}, Dumper=dumper, sort_keys=False))


def cache_root(where: Path, cache_dir: str | None) -> Path:
    return Path(cache_dir) if cache_dir else where / ".dvc" / "cache"


def copy_uncached_outputs(where: Path, entries: list[LockEntry], cache: Path) -> None:
    """Put in place the outputs `dvc checkout` leaves alone: the `cache: false` metrics and plots
    (committed reports, figures). DVC's run-cache keeps them in the cache all the same, under the
    md5 the lock names (a folder's `.dir` object lists its files). Whatever git checked out there
    (made by another run) is replaced; copies, not links, since git tracks them."""
    objects = cache / "files" / "md5"
    for item in entries:
        for out in item.entry.get("outs", []):
            if out["path"] not in item.uncached:
                continue
            target, digest = where / out["path"], out["md5"]
            if target.is_dir():
                shutil.rmtree(target)
            if digest.endswith(".dir"):
                for member in json.loads((objects / digest[:2] / digest[2:]).read_text()):
                    _copy_object(objects, member["md5"], target / member["relpath"])
            else:
                _copy_object(objects, digest, target)


def _copy_object(objects: Path, digest: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(objects / digest[:2] / digest[2:], target)


def restore_inputs(spec: TaskSpec, where: Path, env: dict[str, str]) -> None:
    """The outputs of the stages this one reads, from the cache (or the remote), no command run."""
    if not spec.inputs:
        return
    dvc = [sys.executable, "-m", "dvc"]
    # the checkout's locks hold exactly the inputs' entries, so their files are the targets; DVC
    # counts the outputs of those files' other stages (no entry) as missing, hence --allow-missing.
    # An input that is truly missing stops `dvc repro` (missing dependency) all the same
    _step([*dvc, "pull" if spec.remote else "checkout", "--allow-missing", *pipeline_files(spec.inputs)], where, env)
    copy_uncached_outputs(where, list(spec.inputs), cache_root(where, spec.cache_dir))


def reproduce(spec: TaskSpec, where: Path, env: dict[str, str]) -> str:
    """`dvc repro --single-item <stage>`: its run-cache entry restored if there is one, else run;
    results pushed to a remote."""
    dvc = [sys.executable, "-m", "dvc"]
    output = _step([*dvc, "repro", "--single-item", *(["--pull"] if spec.remote else []), spec.stage], where, env)
    if spec.remote:
        output += _step([*dvc, "push", "--run-cache", spec.stage], where, env)
    return output


def own_lock(spec: TaskSpec, where: Path) -> LockEntry:
    """The entry DVC wrote for the stage in the checkout's lock."""
    file, _, name = spec.stage.rpartition(":")
    file = file or "dvc.yaml"
    lock = yaml.load((where / file).with_name("dvc.lock").read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return LockEntry(file, name, lock["stages"][name])


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
        write_locks(where, spec.inputs)
        restore_inputs(spec, where, env)
        setup = time.perf_counter() - started
        output = reproduce(spec, where, env)
        executed = re.search(r"Running stage '", output) is not None
        return TaskResult(spec.stage, True, time.perf_counter() - started, executed,
                          "\n".join(output.strip().splitlines()[-TAIL_LINES:]), socket.gethostname(),
                          own_lock(spec, where), setup)
    except (StepFailed, OSError) as error:
        return TaskResult(spec.stage, False, time.perf_counter() - started, True, str(error), socket.gethostname())
    finally:
        if not spec.keep:
            shutil.rmtree(scratch, ignore_errors=True)
