"""Benchmark: the grid's cold wall time, sequential `dvc repro` against the Ray launcher.

    python bench/launch.py                              # the default grid (~20 min on 2 cores)
    python bench/launch.py --profile tiny            # a quick check that the bench works (conf/profile/tiny.yaml)

Both runs start cold from their own temporary git copy of the repository's sources with their own
DVC cache: `dvc repro` (torch's default threads, as a user runs it), and `python -m
backdoorlab.launch --workers N` (N tasks of one CPU and one torch thread each, on a local Ray
instance, including its final collect step). Prints both wall times and their ratio.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backdoorlab.compose import compose_params
from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def environment() -> dict[str, str]:
    return {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}


def cold_copy(dst: Path, profile: str | None) -> Path:
    """A committed copy of the sources with `profile` composed into params.yaml (workers check out HEAD)."""
    copy_sources(ROOT, dst)
    if profile is not None:
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
    print(f"\n{args.profile or 'params.yaml'}: sequential {seq_s:.1f} s, launcher {launch_s:.1f} s, "
          f"speed-up x{seq_s / launch_s:.2f}")
    if "re-ran" in launch_out:
        print("warning: the collect step re-ran stages (outputs the run-cache cannot restore); see above")


if __name__ == "__main__":
    main()
