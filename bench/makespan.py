"""Predict a pipeline's makespan on 1 to 256 launcher workers from measured stage times and the DAG.

    python bench/makespan.py                          # every pipeline file (the full DAG), this CPU
    python bench/makespan.py --pipeline dvc.yaml      # the default run only
    python bench/makespan.py --profile paper          # the paper profile on GPU workers (an estimate)

A stage's duration is its process time as `bench/pipeline.py` last measured it
(`bench/stage_times.json`); a stage that run did not include (the full matrix's) takes the measured
start-up (median of process time minus the compute its record logs) plus the compute its own
committed record logs (every `seconds` key), else its family's median. Each task adds the launcher's
per-task overhead (`--overhead`: clone, locks, checking inputs out, DVC; `bench/launch.py` prints it).
`--times bench/launch_times.json` takes a launcher run's own task times instead (its workers have one
thread each, where `bench/pipeline.py`'s stages had two) and compares the prediction with its wall time.

The simulation is list scheduling, as the launcher runs it: a stage starts when its upstream has
finished and a worker is free, longest remaining path first. It prints the total work, the
critical path (no worker count beats it), and per worker count the makespan, the speed-up over
one worker and the utilisation (work / (workers x makespan)).

The paper profile has not run on a GPU here (no GPU was lent), so its stage times are a stated
estimate for one H100-class GPU per worker (`PAPER_GPU_SECONDS`), not a measurement.
"""

from __future__ import annotations

import argparse
import heapq
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TIMES_FILE = ROOT / "bench" / "stage_times.json"
WORKERS = [1, 2, 4, 8, 16, 32, 64, 128, 256]

# Seconds per stage on one H100-class GPU, paper profile (CIFAR-10, ResNet-18, 100 epochs): an
# estimate from ~8 s per epoch of 50,000 images at batch 128 with bf16 and channels-last, not a
# measurement. Shadow models: 8 x 100 epochs on 25,000 images. A defense: up to 20 epochs on the
# defender's 2,500 images plus evaluation; sequela: the attacks on 500-1,000 images, re-injection.
PAPER_GPU_SECONDS = {"prepare": 60, "poison": 15, "train": 800, "train_clean": 800, "shadow": 3200, "defend": 90,
                     "retrain": 900, "sequela": 150, "reinject_baseline": 60, "landscape": 120, "report": 60,
                     "upstream": 800, "implant": 300, "counterpart": 300, "downstream": 200}


def family(address: str) -> str:
    return address.rsplit(":", 1)[-1].split("@", 1)[0]


def logged_compute(outputs: list[Path]) -> float | None:
    """The compute seconds a stage's JSON records log (keys `seconds` or `<attack>.seconds`)."""
    total, found = 0.0, False
    for out in outputs:
        files = sorted(out.rglob("*.json")) if out.is_dir() else [out] if out.suffix == ".json" and out.is_file() else []
        for file in files:
            record = json.loads(file.read_text())
            if isinstance(record, dict):
                for key, value in record.items():
                    if (key == "seconds" or key.endswith(".seconds")) and isinstance(value, (int, float)):
                        total, found = total + value, True
    return total if found else None


def read_dag(root: Path, pipeline: str | None) -> tuple[dict[str, set[str]], dict[str, list[Path]]]:
    """Every stage's upstream stages and output paths (of `dvc repro <pipeline>`, or of everything)."""
    import networkx as nx
    from dvc.repo import Repo

    with Repo(str(root)) as repo:
        graph = repo.index.graph
        named = {s: s.name if s.path_in_repo == "dvc.yaml" else f"{s.path_in_repo}:{s.name}" for s in graph}
        stages = [s for s in graph if getattr(s, "cmd", None)]
        if pipeline is not None:
            tops = [s for s in stages if s.path_in_repo == pipeline]
            if not tops:
                sys.exit(f"--pipeline {pipeline}: no stages there")
            wanted = set(tops).union(*(nx.descendants(graph, s) for s in tops))
            stages = [s for s in stages if s in wanted]
        upstream = {named[s]: {named[u] for u in graph.successors(s) if u in stages} for s in stages}
        outputs = {named[s]: [Path(o.fs_path) for o in s.outs] for s in stages}
    return upstream, outputs


def durations(upstream: dict[str, set[str]], outputs: dict[str, list[Path]], profile: str) -> dict[str, float]:
    if profile == "paper":
        return {name: float(PAPER_GPU_SECONDS.get(family(name), 60)) for name in upstream}
    measured = {name: times["process"] for name, times in json.loads(TIMES_FILE.read_text())["stages"].items()}
    computes = {name: logged_compute(outputs[name]) for name in upstream}
    startup = statistics.median(measured[n] - c for n, c in computes.items() if n in measured and c is not None)
    by_family: dict[str, list[float]] = {}
    for name, seconds in measured.items():
        by_family.setdefault(family(name), []).append(seconds)
    out: dict[str, float] = {}
    unmeasured: dict[str, int] = {}
    for name in upstream:
        if name in measured:
            out[name] = measured[name]
        elif computes[name] is not None:
            out[name] = startup + computes[name]
        elif family(name) in by_family:
            out[name] = statistics.median(by_family[family(name)])
        else:
            out[name] = startup
            unmeasured[family(name)] = unmeasured.get(family(name), 0) + 1
    if unmeasured:
        print("no measured time (start-up only, so the prediction is a lower bound): "
              + ", ".join(f"{count} {name}" for name, count in sorted(unmeasured.items())))
    return out


def simulate(upstream: dict[str, set[str]], seconds: dict[str, float], workers: int) -> float:
    """List scheduling on `workers` identical workers, longest remaining path first; the makespan."""
    downstream: dict[str, set[str]] = {name: set() for name in upstream}
    for name, ups in upstream.items():
        for up in ups:
            downstream[up].add(name)
    rank: dict[str, float] = {}
    for name in reversed(topological(upstream)):
        rank[name] = seconds[name] + max((rank[d] for d in downstream[name]), default=0.0)
    waiting = {name: len(ups) for name, ups in upstream.items()}
    ready = [(-rank[n], n) for n, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    running: list[tuple[float, str]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < workers:
            _, name = heapq.heappop(ready)
            heapq.heappush(running, (now + seconds[name], name))
        now, done = heapq.heappop(running)
        for name in downstream[done]:
            waiting[name] -= 1
            if waiting[name] == 0:
                heapq.heappush(ready, (-rank[name], name))
    return now


def topological(upstream: dict[str, set[str]]) -> list[str]:
    order, seen = [], set()

    def visit(name: str) -> None:
        if name not in seen:
            seen.add(name)
            for up in sorted(upstream[name]):
                visit(up)
            order.append(name)

    for name in sorted(upstream):
        visit(name)
    return order


def critical_path(upstream: dict[str, set[str]], seconds: dict[str, float]) -> float:
    finish: dict[str, float] = {}
    for name in topological(upstream):
        finish[name] = seconds[name] + max((finish[u] for u in upstream[name]), default=0.0)
    return max(finish.values())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", default=None, help="only what `dvc repro FILE` runs (default: every file)")
    parser.add_argument("--profile", choices=["default", "paper"], default="default")
    parser.add_argument("--overhead", type=float, default=2.7,
                        help="launcher seconds per task besides the stage's process: bench/launch.py's mean "
                             "set-up (1.5 s, 2026-12-06) plus DVC's bookkeeping around a stage (1.2 s)")
    parser.add_argument("--measured", type=float, default=None,
                        help="a measured makespan at --measured-workers, printed beside the prediction")
    parser.add_argument("--measured-workers", type=int, default=2)
    parser.add_argument("--times", type=Path, default=None,
                        help="a launcher run's own task times (bench/launch_times.json, set-up included): they "
                             "replace the estimate for its stages, and its wall time is the measured makespan")
    args = parser.parse_args()
    sys.setrecursionlimit(10_000)
    upstream, outputs = read_dag(ROOT, args.pipeline)
    seconds = {name: s + args.overhead for name, s in durations(upstream, outputs, args.profile).items()}
    if args.times is not None:
        run = json.loads(args.times.read_text())
        seconds.update({name: task["seconds"] for name, task in run["tasks"].items() if name in seconds})
        args.measured, args.measured_workers = run["launcher_seconds"], run["workers"]
    work, path = sum(seconds.values()), critical_path(upstream, seconds)
    basis = (f"task times of {args.times}" if args.times is not None
             else f"with {args.overhead:.1f} s overhead per task")
    print(f"{args.pipeline or 'every pipeline file'}, {args.profile} profile: {len(upstream)} stages, "
          f"{work / 60:.1f} min of work ({basis}), critical path {path / 60:.1f} min")
    print(f"{'workers':>8s} {'makespan min':>13s} {'speed-up':>9s} {'utilisation':>12s}")
    single = simulate(upstream, seconds, 1)
    for workers in WORKERS:
        span = simulate(upstream, seconds, workers)
        print(f"{workers:8d} {span / 60:13.1f} {single / span:9.2f} {work / (workers * span):12.0%}")
    if args.measured is not None:
        predicted = simulate(upstream, seconds, args.measured_workers)
        print(f"measured at {args.measured_workers} workers: {args.measured:.0f} s, predicted {predicted:.0f} s "
              f"({predicted / args.measured - 1:+.0%})")


if __name__ == "__main__":
    main()
