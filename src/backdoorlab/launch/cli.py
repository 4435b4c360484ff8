"""Run the stale stages of the DVC grid on a Ray cluster, then collect them in the workspace.

    python -m backdoorlab.launch                     # a local Ray instance, one task per CPU
    python -m backdoorlab.launch --workers 2         # at most 2 stages at a time
    RAY_ADDRESS=ray://head:10001 python -m backdoorlab.launch    # an existing cluster

DVC has no remote executor and holds one lock per workspace, so the launcher gives each stale
stage its own Ray task, sized by `launch.resources` in params.yaml, that runs that one stage in a
clean checkout of HEAD sharing the workspace's DVC cache (see task.py). Stages start once their
upstream stages have finished, and each task receives the lock entries of the stages it reads,
so every stage runs exactly once. The collect step then writes every task's lock entry into the
workspace's locks and checks the outputs out of the cache: it runs no stage command. Ray is an
optional extra (`pip install -e '.[cluster]'`), imported only here.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from backdoorlab.config import PARAMS_FILE, load_params
from backdoorlab.launch.plan import (LockEntry, Plan, StageNode, default_remote, head_commit, pipeline_files, read_plan,
                                     uncommitted_sources, workspace_cache_dir)
from backdoorlab.errors import ConfigError
from backdoorlab.launch.settings import DEFAULT_FAMILY, LaunchSettings, parse_launch
from backdoorlab.launch.task import TaskResult, TaskSpec, copy_uncached_outputs, run_task, task_environment
from backdoorlab.launch.scheduler import run_schedule


class LaunchError(RuntimeError):
    """The launch cannot start (dirty workspace, Ray missing, infeasible resources): one line."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m backdoorlab.launch", description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=Path("."), help="the DVC workspace (default: .)")
    parser.add_argument("--address", default=None,
                        help="Ray cluster address, e.g. ray://head:10001 (default: $RAY_ADDRESS, else a local instance)")
    parser.add_argument("--workers", type=int, default=None, help="at most this many stages at a time")
    parser.add_argument("--num-cpus", type=int, default=None,
                        help="CPUs of the local Ray instance (default: --workers x the largest num_cpus, "
                             "capped at this machine's)")
    shared = parser.add_mutually_exclusive_group()
    shared.add_argument("--cache-dir", default=None,
                        help="DVC cache directory every worker can reach (default: the workspace's cache)")
    shared.add_argument("--remote", default=None,
                        help="DVC remote that carries the run-cache instead (dvc push/fetch --run-cache)")
    parser.add_argument("--source", default=None,
                        help="what workers `git clone` (default: the workspace path, for one machine or a "
                             "shared filesystem)")
    parser.add_argument("--scratch", default=None, help="where workers make their checkouts (default: temp)")
    parser.add_argument("--keep-checkouts", action="store_true", help="leave workers' checkouts behind")
    parser.add_argument("--no-collect", action="store_true", help="skip the final `dvc repro` in the workspace")
    parser.add_argument("--dry-run", action="store_true", help="print the stages and their resources, run nothing")
    parser.add_argument("--pipeline", default=None,
                        help="only what `dvc repro FILE` would run, e.g. dvc.yaml for the default run "
                             "(default: every stale stage of every pipeline, the full matrix's too)")
    args = parser.parse_args(argv)
    for name in ("workers", "num_cpus"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')}: must be >= 1, got {value}")
    return args


def check_families(settings: LaunchSettings, plan: Plan) -> None:
    """A misspelt family would silently fall back to `default`: name it instead."""
    for family in settings.resources:
        if family != DEFAULT_FAMILY and family not in plan.families:
            raise ConfigError(f"launch.resources.{family}: no stage family of that name "
                              f"(families: {', '.join(sorted(plan.families))})")


def check_workspace(root: Path, plan: Plan) -> str:
    """The commit to launch; refuses source edits that the workers' checkouts would not have."""
    commit = head_commit(root)
    dirty = uncommitted_sources(root, plan.outputs)
    if dirty:
        shown = ", ".join(dirty[:5]) + (f" and {len(dirty) - 5} more" if len(dirty) > 5 else "")
        raise LaunchError(f"uncommitted changes in {shown}: workers check out HEAD ({commit[:8]}); "
                          "commit or stash them first")
    return commit


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise LaunchError("the launcher needs Ray: pip install -e '.[cluster]'") from None
    return ray


def start_ray(ray: Any, args: argparse.Namespace, settings: LaunchSettings) -> None:
    """Connect to the cluster named by --address/$RAY_ADDRESS, or start a local instance."""
    address = args.address or os.environ.get("RAY_ADDRESS")
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                               "logging_level": logging.ERROR}  # our own progress lines are the log
    if address:
        import backdoorlab  # ship this package to the cluster's workers (they still need its dependencies)
        ray.init(address=address, runtime_env={"py_modules": [backdoorlab]}, **options)
        return
    widest = max([r.num_cpus for r in settings.resources.values()] + [1])
    num_cpus = args.num_cpus or min(os.cpu_count() or 1, (args.workers or os.cpu_count() or 1) * widest)
    ray.init(num_cpus=num_cpus, **options)


def check_feasible(ray: Any, settings: LaunchSettings, plan: Plan, local: bool) -> None:
    """A task asking for more than the whole cluster has would wait forever: refuse it now."""
    total = ray.cluster_resources()
    for stage in plan.stages:
        need = settings.for_family(stage.family)
        if need.num_cpus > total.get("CPU", 0) or need.num_gpus > total.get("GPU", 0):
            family = stage.family if stage.family in settings.resources else DEFAULT_FAMILY
            message = (f"launch.resources.{family}: {stage.name} asks for {need.num_cpus} CPU / {need.num_gpus} GPU, "
                       f"the Ray cluster has {total.get('CPU', 0):g} / {total.get('GPU', 0):g}")
            if local:
                raise LaunchError(message)
            print(f"warning: {message} (waiting for the autoscaler)", file=sys.stderr)


class RayExecutor:
    """Submits `run_task` as a Ray task per stage with its family's CPUs and GPUs."""

    def __init__(self, ray: Any, settings: LaunchSettings, template: TaskSpec, plan: Plan) -> None:
        self.ray, self.settings, self.template = ray, settings, template
        self.remote = ray.remote(run_task)
        self.running: dict[Any, str] = {}
        self.locks = dict(plan.locks)  # the committed entries, replaced by each finished task's own
        self.uncached = plan.uncached

    def submit(self, stage: StageNode) -> None:
        need = self.settings.for_family(stage.family)
        inputs = tuple(self.locks[name] for name in sorted(stage.inputs) if name in self.locks)
        spec = dataclasses.replace(self.template, stage=stage.name, threads=need.num_cpus, inputs=inputs)
        ref = self.remote.options(num_cpus=need.num_cpus, num_gpus=need.num_gpus, name=stage.name).remote(spec)
        self.running[ref] = stage.name

    def wait_one(self) -> TaskResult:
        (ref,), _ = self.ray.wait(list(self.running), num_returns=1)
        stage = self.running.pop(ref)
        try:
            result: TaskResult = self.ray.get(ref)
            if result.lock is not None:
                self.locks[result.stage] = dataclasses.replace(result.lock, uncached=self.uncached.get(result.stage, ()))
            return result
        except Exception as error:  # the task itself died (node lost, out of memory): report, go on
            lines = str(error).strip().splitlines() or [type(error).__name__]
            return TaskResult(stage, False, 0.0, True, f"Ray task error: {lines[-1]}", "?")


def merge_cache(shared: Path, own: Path) -> None:
    """Bring the workers' results (objects and run-cache entries) into the workspace's own cache.

    Both are content-addressed, so adding the files that are missing is safe; hard links where the
    file system allows keep it cheap. Leaves the workspace's DVC config untouched.
    """
    for part in ("files", "runs"):
        for source in (shared / part).rglob("*"):
            target = own / source.relative_to(shared)
            if source.is_dir() or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)


def collect(root: Path, results: list[LockEntry], remote: str | None, shared: str | None) -> list[str]:
    """Bring the tasks' results into the workspace: their lock entries into its locks (one rewrite
    per lock file), their outputs out of the cache. Runs no stage; returns the stages that
    `dvc status` still reports changed afterwards (none, unless an output went missing)."""
    from dvc.utils.serialize import modify_yaml  # DVC's own writer: the lock keeps DVC's format

    env = task_environment(threads=os.cpu_count() or 1, checkout=root)
    dvc = [sys.executable, "-m", "dvc"]
    own = Path(workspace_cache_dir(root))
    if shared and Path(shared).resolve() != own:
        merge_cache(Path(shared).resolve(), own)
    by_file: dict[str, list[LockEntry]] = {}
    for item in results:
        by_file.setdefault(item.file, []).append(item)
    for file, items in by_file.items():
        with modify_yaml(str((root / file).with_name("dvc.lock"))) as lock:
            lock.setdefault("schema", "2.0")
            stages = lock.setdefault("stages", {})
            for item in items:
                stages[item.name] = item.entry
    # whole files as targets (see pipeline_files); a stage of theirs that failed or was skipped
    # may lack its outputs, hence --allow-missing: `dvc status` below judges the produced ones
    files, produced = pipeline_files(results), {item.address for item in results}
    if remote:
        subprocess.run([*dvc, "fetch", "--run-cache", "-r", remote], cwd=root, env=env, capture_output=True)
    restored = subprocess.run([*dvc, "pull" if remote else "checkout", "--force", "--allow-missing", *files],
                              cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if restored.returncode != 0:
        tail = " | ".join(restored.stdout.strip().splitlines()[-3:])
        raise LaunchError(f"restoring the results in {root} failed: {tail}")
    copy_uncached_outputs(root, results, own)
    status = subprocess.run([*dvc, "status", "--json", *files], cwd=root, env=env, capture_output=True, text=True)
    if status.returncode != 0:
        return sorted(produced)
    return sorted(produced.intersection(json.loads(status.stdout or "{}")))


def launch(args: argparse.Namespace) -> int:
    """The whole run; returns the exit code (1 when a stage failed)."""
    started = time.perf_counter()
    root = args.repo.resolve()
    if not (root / ".dvc").is_dir():
        raise LaunchError(f"{root}: not a DVC repository (no .dvc folder)")
    params = load_params(root / PARAMS_FILE)  # validates the default run's sections first
    settings = parse_launch(params.raw.get("launch"))
    plan = read_plan(root, args.pipeline)
    check_families(settings, plan)
    commit = check_workspace(root, plan)
    if args.remote and default_remote(root) != args.remote:
        raise LaunchError(f"--remote {args.remote}: must be the workspace's default DVC remote "
                          f"(`dvc remote default {args.remote}`), from which the final `dvc repro --pull` pulls")
    if not plan.stages:
        print("nothing to do: every stage is up to date")
        return 0
    if args.dry_run:
        for stage in plan.stages:
            need = settings.for_family(stage.family)
            print(f"{stage.name}: {need.num_cpus} CPU, {need.num_gpus:g} GPU, after {len(stage.upstream)} stage(s)")
        return 0
    ray = import_ray()
    start_ray(ray, args, settings)
    try:
        check_feasible(ray, settings, plan, local=not (args.address or os.environ.get("RAY_ADDRESS")))
        template = TaskSpec(stage="", source=args.source or str(root), commit=commit, threads=1,
                            cache_dir=None if args.remote else str(Path(args.cache_dir or workspace_cache_dir(root)).resolve()),
                            remote=args.remote, scratch=args.scratch, keep=args.keep_checkouts)
        print(f"launching {len(plan.stages)} stage(s) of {commit[:8]} on Ray "
              f"({ray.cluster_resources().get('CPU', 0):g} CPUs)", flush=True)
        executor = RayExecutor(ray, settings, template, plan)
        outcome = run_schedule(plan.stages, executor, args.workers, report=lambda line: print(line, flush=True))
    finally:
        ray.shutdown()
    print(f"ran {len(plan.stages)} stage(s) in {time.perf_counter() - started:.1f} s: {len(outcome.succeeded)} ok, "
          f"{len(outcome.failed)} failed, {len(outcome.skipped)} skipped", flush=True)
    if outcome.succeeded and not args.no_collect:
        collect_started = time.perf_counter()
        produced = [executor.locks[name] for name in outcome.succeeded]
        changed = collect(root, produced, args.remote, args.cache_dir)
        note = f"; still changed in `dvc status`: {', '.join(changed)}" if changed else ""
        print(f"collected {len(produced)} stage(s) into {root} in {time.perf_counter() - collect_started:.1f} s, "
              f"no stage command run{note}", flush=True)
    if outcome.failed:
        print(f"failed: {', '.join(outcome.failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        code = launch(args)
    except (ConfigError, LaunchError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code)

