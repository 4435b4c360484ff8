"""Benchmark: a cold `dvc repro` of the default grid, and training throughput.

    python bench/pipeline.py                 # both (cold repro in a temporary copy: ~minutes)
    python bench/pipeline.py --throughput    # only the training-throughput comparison
    python bench/pipeline.py --share-cache   # and keep the cold run's results in this repo's run-cache
    python bench/pipeline.py --clone         # a fresh clone's condition: the committed HEAD and its locks

The cold run copies the repository's source (not its caches, outputs or locks) to a temporary
folder, or with ``--clone`` git-clones the committed HEAD (the README's `make repro` on a fresh
clone: the committed locks, whose outputs the empty cache lacks), and runs `dvc repro` there, timing
every stage as DVC starts it (written to bench/stage_times.json). Each stage's Python process logs
its own wall time (a `sitecustomize` on the stages' PYTHONPATH, so no library code changes), which
splits a stage's time into its process (start-up and compute) and DVC's bookkeeping around it
(hashing, the run-cache, rewriting the stage's dvc.lock). The throughput part trains the default
model on the default batch with our `fit` loop (augmentation, schedule, bookkeeping) and with a bare
PyTorch loop (index, forward, backward, step), and prints images per second for both.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from backdoorlab.config import load_params
from backdoorlab.data.base import ImageSet
from backdoorlab.models import ModelSpec, build_model
from backdoorlab.pipeline.checks import data_shape
from backdoorlab.pipeline.victims import regime_recipe
from backdoorlab.snapshot import copy_sources
from backdoorlab.training.loop import fit, sgd, to_float
from backdoorlab.training.schedules import constant

ROOT = Path(__file__).resolve().parents[1]
BUDGET_S = 600
TIMES_FILE = ROOT / "bench" / "stage_times.json"  # the last cold run's per-stage times (bench/makespan.py reads them)


def cold_repro(share_cache: bool, clone: bool) -> None:
    """``share_cache``: the copy uses this repository's DVC cache, so that a `dvc repro` here
    afterwards restores every stage from the run-cache instead of running it again (the copy
    still runs every stage: `--no-run-cache` ignores earlier runs but records this one)."""
    dvc = str(Path(sys.executable).parent / "dvc")
    with tempfile.TemporaryDirectory(prefix="bench-repro-") as tmp:
        hooks, log = Path(tmp) / "hooks", Path(tmp) / "stage-processes.jsonl"
        hooks.mkdir()
        (hooks / "sitecustomize.py").write_text(PROCESS_TIMER)
        env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               "DVC_NO_ANALYTICS": "1", "PYTHONPATH": str(hooks), "BENCH_STAGE_LOG": str(log)}
        tmp = str(Path(tmp) / "repo")
        if clone:
            subprocess.run(["git", "clone", "-q", str(ROOT), tmp], check=True)
        else:
            copy_sources(ROOT, Path(tmp))
            subprocess.run(["git", "init", "-q"], cwd=tmp, check=True)
        if share_cache:
            subprocess.run([dvc, "cache", "dir", "--local", str(ROOT / ".dvc" / "cache")], cwd=tmp, env=env, check=True)
        started = time.perf_counter()
        stages: list[tuple[str, float]] = []
        process = subprocess.Popen([dvc, "repro", "--no-run-cache"], cwd=tmp, env=env,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        assert process.stdout is not None
        tail: list[str] = []
        for line in process.stdout:
            tail = (tail + [line])[-40:]
            match = re.match(r"Running stage '([^']+)'", line)
            if match:
                stages.append((match.group(1), time.perf_counter()))
        if process.wait() != 0:
            sys.exit("dvc repro failed:\n" + "".join(tail))
        total = time.perf_counter() - started
        processes = [json.loads(line) for line in log.read_text().splitlines()]

    ends = [t for _, t in stages[1:]] + [started + total]
    families: dict[str, list[float]] = {}
    print(f"{'stage':60s} {'wall':>6s} {'process':>8s} {'dvc':>6s}")
    for (name, start), end, process_s in zip(stages, ends, [p["seconds"] for p in processes]):
        wall = end - start
        print(f"{name:60s} {wall:6.1f} {process_s:8.1f} {wall - process_s:6.1f}")
        sums = families.setdefault(name.rsplit(":", 1)[-1].split("@")[0], [0, 0.0, 0.0])
        sums[0] += 1
        sums[1] += process_s
        sums[2] += wall - process_s
    print(f"\n{'family':20s} {'stages':>6s} {'process s':>10s} {'dvc s':>8s} {'dvc s/stage':>12s}")
    for family, (count, process_s, dvc_s) in families.items():
        print(f"{family:20s} {count:6d} {process_s:10.0f} {dvc_s:8.0f} {dvc_s / count:12.1f}")
    TIMES_FILE.write_text(json.dumps({
        "cpu": cpu_model(), "threads": torch.get_num_threads(), "cold_seconds": round(total, 1),
        "stages": {name: {"process": round(process_s, 2), "dvc": round(end - start - process_s, 2)}
                   for (name, start), end, process_s in zip(stages, ends, [p["seconds"] for p in processes])}},
        indent=1) + "\n")
    print(f"\nDVC before the first stage (reading every pipeline file and lock): {stages[0][1] - started:.1f} s")
    print(f"cold dvc repro: {total:.0f} s for {len(stages)} stages (budget {BUDGET_S} s: "
          f"{'within' if total <= BUDGET_S else 'OVER'}); stage processes "
          f"{sum(p['seconds'] for p in processes):.0f} s, DVC around them "
          f"{total - sum(p['seconds'] for p in processes):.0f} s")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").is_file() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


# Every stage's Python process appends its argv and wall time to $BENCH_STAGE_LOG when it exits.
PROCESS_TIMER = """
import atexit, json, os, sys, time
_started = time.perf_counter()
if os.environ.get("BENCH_STAGE_LOG") and sys.argv and "stages/" in sys.argv[0]:
    def _log() -> None:
        with open(os.environ["BENCH_STAGE_LOG"], "a") as out:
            out.write(json.dumps({"argv": sys.argv, "seconds": time.perf_counter() - _started}) + "\\n")
    atexit.register(_log)
"""


def throughput(steps: int = 60) -> None:
    params = load_params(ROOT / "params.yaml")
    (channels, size, _), classes = data_shape(params)
    spec = ModelSpec(params.model_arch, params.model_params, channels, size, classes, (0.5,) * channels, (0.25,) * channels)
    cfg = regime_recipe(params, None)
    n = steps * cfg.batch_size
    g = torch.Generator().manual_seed(0)
    data = ImageSet(torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8),
                    torch.randint(0, classes, (n,), generator=g))
    device = torch.device("cpu")

    def ours() -> None:
        model = build_model(spec)
        fit(model, data, epochs=1, batch_size=cfg.batch_size, optimizer=sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay),
            schedule=constant(cfg.lr), generator=g, augment=cfg.augment, device=device,
            precision=cfg.precision, on_epoch=lambda epoch, loss: None)

    def bare() -> None:
        model = build_model(spec)
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
        model.train()
        for i in range(steps):
            x = to_float(data.images[i * cfg.batch_size:(i + 1) * cfg.batch_size], device)
            y = data.labels[i * cfg.batch_size:(i + 1) * cfg.batch_size]
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                loss = torch.nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()

    print(f"\ntraining throughput, {params.model_arch} {dict(params.model_params)}, batch {cfg.batch_size}, "
          f"{cfg.precision}, {torch.get_num_threads()} threads, {steps} steps:")
    for name, loop in (("bare PyTorch loop", bare), ("backdoorlab fit (+augment, schedule)", ours)):
        loop()  # warm-up: allocator, oneDNN kernels
        started = time.perf_counter()
        loop()
        seconds = time.perf_counter() - started
        print(f"  {name:38s} {n / seconds:8.0f} images/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--throughput", action="store_true", help="skip the cold dvc repro")
    parser.add_argument("--share-cache", action="store_true",
                        help="record the cold run in this repository's DVC run-cache (then `dvc repro` here restores it)")
    parser.add_argument("--clone", action="store_true",
                        help="run in a git clone of HEAD (committed locks, empty cache) instead of a lock-less copy")
    args = parser.parse_args()
    if not args.throughput:
        cold_repro(args.share_cache, args.clone)
    throughput()


if __name__ == "__main__":
    main()
