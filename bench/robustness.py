"""Robustness sweep: the default params on settings they were never tuned on; no silent collapse.

    python bench/robustness.py                  # every setting, two at a time on one thread each
    python bench/robustness.py --only width8    # one setting

Each setting changes one thing of the default params.yaml (model width, training-set size, epochs,
augmentation) and runs, in a temporary copy of the repository, every `defend@*` cell of the default
grid at its first seed (and what it needs: prepare, poison, train), but not the sequela. For every
cell it prints the test CA before and after, the ASR after, the share of the accuracy above chance
kept on the test set and on the defender's validation set, and the collapse flag. A **silent
collapse** is a cell that kept less than `utility.collapse_floor` of its test accuracy above chance
without being flagged: the sweep must find none. Calibrated cells also report whether their test CA
stayed within their budget (plus the validation noise: budget + 2 standard errors of the validation
accuracy).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from backdoorlab.graph.blocks import pipeline_file
from backdoorlab.metrics import retained_accuracy
from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def set_key(params: dict[str, Any], dotted: str, value: Any) -> None:
    node = params
    *parents, last = dotted.split(".")
    for part in parents:
        node = node[part]
    node[last] = value


# name -> the one change from the defaults (none of these was ever used to choose a default)
SETTINGS: dict[str, dict[str, Any]] = {
    "width8": {"model.width": 8},
    "width32": {"model.width": 32},
    "train3000": {"data.pool_size": 7000},  # 7,000 - 2,000 test - 2,000 shadow = 3,000 training images
    "epochs6": {"train.epochs": 6},
    "epochs20": {"train.epochs": 20},
    "no_augment": {"train.augment.crop_padding": 0, "train.augment.hflip": False},
}


def run_setting(name: str, changes: dict[str, Any], workdir: Path, threads: int) -> list[dict[str, Any]]:
    """Reproduce every defend cell of the default grid at its first seed with ``changes``; return
    one row per cell."""
    repo = workdir / name
    repo.mkdir()
    copy_sources(ROOT, repo)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for key, value in changes.items():
        set_key(params, key, value)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
           "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    for command in (["git", "init", "-q"], ["git", "add", "-A"],
                    ["git", "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", name]):
        subprocess.run(command, cwd=repo, check=True, env=env)
    started = time.perf_counter()
    seed = params["grid"]["seeds"][0]
    targets = [f"{pipeline_file('default', (attack, seed))}:defend@*" for attack in params["grid"]["attacks"]]
    result = subprocess.run([str(BIN / "dvc"), "repro", "--glob", *targets], cwd=repo, env=env,
                            capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-5:]
        raise RuntimeError(f"{name}: dvc repro failed:\n" + "\n".join(tail))
    floor = params["utility"]["collapse_floor"]
    rows = []
    for attack in params["grid"]["attacks"]:
        before = json.loads((repo / f"reports/records/train/{attack}/s{seed}/metrics.json").read_text())
        for defense in params["grid"]["defenses"]:
            cell = json.loads((repo / f"reports/records/cells/{attack}-{defense}/s{seed}/defense.json").read_text())
            test_kept = retained_accuracy(before["ca"], cell["ca"], 10)
            calibration = cell["calibration"]
            within = None
            if calibration:
                noise = 2 * math.sqrt(cell["val_acc_before"] * (1 - cell["val_acc_before"])
                                      / cell["validation_samples"])
                within = before["ca"] - cell["ca"] <= calibration["budget"] + noise
            rows.append({"setting": name, "attack": attack, "defense": defense,
                         "ca_before": before["ca"], "asr_before": before["asr"], "ca": cell["ca"],
                         "asr": cell["asr"], "test_kept": test_kept, "val_kept": cell["val_retained"],
                         "collapsed": cell["collapsed"], "silent": test_kept < floor and not cell["collapsed"],
                         "cal_within_budget": within, "seconds": seconds})
    return rows


def report(rows: list[dict[str, Any]]) -> str:
    """A Markdown summary per setting, then every cell that collapsed or missed its budget."""
    lines = ["| setting | undefended CA / ASR (badnets, blended) | cells | flagged collapsed | silent collapses "
             "| calibrated cells within budget | wall time (s) |", "|---|---|---|---|---|---|---|"]
    for setting in dict.fromkeys(r["setting"] for r in rows):
        cells = [r for r in rows if r["setting"] == setting]
        undefended = ", ".join(f"{100 * r['ca_before']:.1f} / {100 * r['asr_before']:.1f}"
                               for r in cells if r["defense"] == "none")
        calibrated = [r for r in cells if r["cal_within_budget"] is not None]
        lines.append(f"| {setting} | {undefended} | {len(cells)} | {sum(r['collapsed'] for r in cells)} | "
                     f"{sum(r['silent'] for r in cells)} | "
                     f"{sum(bool(r['cal_within_budget']) for r in calibrated)} / {len(calibrated)} | "
                     f"{cells[0]['seconds']:.0f} |")
    notable = [r for r in rows if r["collapsed"] or r["silent"] or r["cal_within_budget"] is False]
    if notable:
        lines += ["", "| setting | cell | CA before -> after | ASR after | test / val accuracy kept | flag |",
                  "|---|---|---|---|---|---|"]
        for r in notable:
            flag = "SILENT COLLAPSE" if r["silent"] else "collapsed" if r["collapsed"] else "over budget"
            lines.append(f"| {r['setting']} | {r['attack']}-{r['defense']} | {100 * r['ca_before']:.1f} -> "
                         f"{100 * r['ca']:.1f} | {100 * r['asr']:.1f} | {r['test_kept']:.2f} / "
                         f"{r['val_kept']:.2f} | {flag} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(SETTINGS), action="append", help="run only these settings")
    parser.add_argument("--json", type=Path, help="also write every row to this JSON file")
    parser.add_argument("--jobs", type=int, default=2,
                        help="settings run at once, each on cpus/jobs threads (default 2: two single-threaded "
                             "runs use two cores without OpenMP's oversubscription stalls)")
    args = parser.parse_args()
    names = args.only or list(SETTINGS)
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with tempfile.TemporaryDirectory(prefix="robustness-") as tmp, \
            concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        def one(name: str) -> list[dict[str, Any]]:
            print(f"[robustness] {name}: {SETTINGS[name]}", file=sys.stderr, flush=True)
            return run_setting(name, SETTINGS[name], Path(tmp), threads)

        rows = [row for result in pool.map(one, names) for row in result]
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(report(rows))
    sys.exit(1 if any(r["silent"] for r in rows) else 0)


if __name__ == "__main__":
    main()
