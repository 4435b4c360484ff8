"""Benchmark: the grid's cold wall time, sequential `dvc repro` against the Ray launcher.

    python bench/launch.py                              # the default grid (~20 min on 2 cores)
    python bench/launch.py --profile tiny            # a quick check that the bench works (conf/profile/tiny.yaml)

Both runs start cold, as on a fresh clone: their own temporary git copy of the repository's sources
and committed `dvc.lock` files (whose outputs their empty DVC cache lacks). `dvc repro` (torch's
default threads, as a user runs it), and `python -m backdoorlab.launch --workers N` (N tasks of one
CPU and one torch thread each, on a local Ray instance, including its final collect step). Prints
both wall times, their ratio, and the launcher's per-task set-up and collect time. The default
grid's run writes each task's time to bench/launch_times.json (bench/makespan.py --times reads it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backdoorlab.compose import compose_params
from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
TIMES_FILE = ROOT / "bench" / "launch_times.json"
TASK_LINE = re.compile(r"\] (\S+) (\d+\.\d) s \(setup (\d+\.\d) s\)")


def environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def cold_copy(dst: Path, profile: str | None) -> Path:
    """A committed copy of the sources with `profile` composed into params.yaml (workers check out HEAD)."""
    copy_sources(ROOT, dst)
    if profile is None:  # a fresh clone has the committed locks, naming outputs made elsewhere
        for lock in [ROOT / "dvc.lock", *ROOT.glob("full/**/dvc.lock")]:
            shutil.copy(lock, dst / lock.relative_to(ROOT))
    else:
        compose_params(dst / "params.yaml", [f"profile={profile}"], dst)
    git = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    for args in (["git", "init", "-q"], [*git, "add", "-A"], [*git, "commit", "-qm", "bench"]):
        subprocess.run(args, cwd=dst, check=True)
    return dst


def timed(args: list[str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    result = subprocess.run(args, cwd=cwd, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        sys.exit(f"{' '.join(args[:4])} failed:\n{result.stdout[-3000:]}")
    return seconds, result.stdout


def write_task_times(tasks: dict[str, tuple[float, float]], workers: int, launch_s: float, seq_s: float) -> None:
    """Each task's wall time (set-up included) on a worker of one thread, and both runs' totals."""
    TIMES_FILE.write_text(json.dumps({
        "workers": workers, "launcher_seconds": round(launch_s, 1), "sequential_seconds": round(seq_s, 1),
        "tasks": {stage: {"seconds": total, "setup": setup} for stage, (total, setup) in tasks.items()}},
        indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", help="a profile of conf/profile/ (default: params.yaml as it is)")
    parser.add_argument("--workers", type=int, default=2, help="launcher tasks at a time (1 CPU each)")
    args = parser.parse_args()
    if args.profile is not None and not (ROOT / "conf" / "profile" / f"{args.profile}.yaml").is_file():
        parser.error(f"--profile: conf/profile/{args.profile}.yaml: file not found")

    with tempfile.TemporaryDirectory(prefix="bench-launch-") as tmp:
        sequential = cold_copy(Path(tmp) / "sequential", args.profile)
        seq_s, seq_out = timed([str(BIN / "dvc"), "repro"], sequential)
        stages = len(re.findall(r"Running stage '", seq_out))
        print(f"sequential dvc repro: {seq_s:.1f} s ({stages} stages)", flush=True)

        launched = cold_copy(Path(tmp) / "launched", args.profile)
        launch_s, launch_out = timed([sys.executable, "-m", "backdoorlab.launch", "--repo", str(launched),
                                      "--pipeline", "dvc.yaml",  # the same stages as `dvc repro`
                                      "--workers", str(args.workers), "--num-cpus", str(args.workers)], launched)
        print(launch_out.rstrip())
        print(f"launcher, {args.workers} workers x 1 thread: {launch_s:.1f} s (including Ray start-up and the "
              "final collect)")
    tasks = {stage: (float(total), float(setup)) for stage, total, setup in TASK_LINE.findall(launch_out)}
    collect = re.search(r"collected \d+ stage\(s\) into .* in (\d+\.\d) s", launch_out)
    if args.profile is None:
        write_task_times(tasks, args.workers, launch_s, seq_s)
    print(f"\n{args.profile or 'params.yaml'}: sequential {seq_s:.1f} s, launcher {launch_s:.1f} s, "
          f"speed-up x{seq_s / launch_s:.2f}")
    if tasks:
        print(f"launcher tasks: {len(tasks)}, mean {sum(t for t, _ in tasks.values()) / len(tasks):.1f} s of which "
              f"set-up (clone, locks, inputs) {sum(s for _, s in tasks.values()) / len(tasks):.1f} s; collect "
              f"{collect.group(1) if collect else '?'} s")
    if "still changed" in launch_out:
        print("warning: the collect step left stages changed; see above")


if __name__ == "__main__":
    main()
