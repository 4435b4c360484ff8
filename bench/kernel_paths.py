"""Benchmark: do the committed results hold under another CPU kernel path?

    python bench/kernel_paths.py                      # AVX2 kernels (ATEN_CPU_CAPABILITY=avx2)
    python bench/kernel_paths.py --capability default # the portable kernels (slowest)

A machine of another CPU type runs other float kernels, whose sums round differently; a result is
only as good as the interval it is reported with. This script copies the repository's sources to a
temporary folder, runs the default pipeline there cold under the chosen kernel path (with
ONEDNN_MAX_CPU_ISA=AVX2, so oneDNN cannot use AVX-512 or AMX either), and reports, for every main
cell of the committed reports/tables/cells.csv, whether the new run's mean of CA and of ASR falls
inside the committed interval, whether the verdict is the same, and how many seeds came out bit
for bit the same. It prints the counts the README quotes.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from backdoorlab.snapshot import copy_sources

ROOT = Path(__file__).resolve().parents[1]


def run_default(tmp: Path, capability: str) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "ATEN_CPU_CAPABILITY": capability, "ONEDNN_MAX_CPU_ISA": "AVX2"}
    copy_sources(ROOT, tmp)
    subprocess.run(["git", "init", "-q"], cwd=tmp, check=True)
    started = time.perf_counter()
    result = subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", "--no-run-cache"], cwd=tmp, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit("dvc repro failed:\n" + (result.stdout + result.stderr)[-4000:])
    return time.perf_counter() - started


def compare(committed: pd.DataFrame, rerun: pd.DataFrame, main: list[str]) -> pd.DataFrame:
    rows = []
    for (attack, defense), old in committed.iterrows():
        if defense not in main:
            continue
        new = rerun.loc[(attack, defense)]
        row = {"cell": f"{attack}-{defense}", "verdict": old["verdict"], "rerun verdict": new["verdict"]}
        for key in ("ca", "asr"):
            row[f"{key} committed"] = f"{old[key]:.3f} [{old[f'{key}_lo']:.3f}, {old[f'{key}_hi']:.3f}]"
            row[f"{key} rerun"] = round(new[key], 3)
            row[f"{key} inside"] = old[f"{key}_lo"] - 1e-9 <= new[key] <= old[f"{key}_hi"] + 1e-9
        row["identical seeds"] = sum(a == b for a, b in zip(str(old["asr_seeds"]).split(";"), str(new["asr_seeds"]).split(";")))
        rows.append(row)
    return pd.DataFrame(rows).set_index("cell")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--capability", default="avx2", choices=["avx2", "default"],
                        help="ATEN_CPU_CAPABILITY of the re-run (default: avx2)")
    args = parser.parse_args()
    committed = pd.read_csv(ROOT / "reports" / "tables" / "cells.csv").set_index(["attack", "defense"])
    main_cells = list(pd.read_csv(ROOT / "reports" / "tables" / "main.csv", index_col=0).columns)
    with tempfile.TemporaryDirectory(prefix="bench-kernels-") as tmp:
        seconds = run_default(Path(tmp), args.capability)
        rerun = pd.read_csv(Path(tmp) / "reports" / "tables" / "cells.csv").set_index(["attack", "defense"])
    table = compare(committed, rerun, main_cells)
    print(table.to_markdown())
    inside = table[["ca inside", "asr inside"]].all(axis=1)
    print(f"\nkernel path ATEN_CPU_CAPABILITY={args.capability}, ONEDNN_MAX_CPU_ISA=AVX2; cold run {seconds:.0f} s")
    print(f"{int(inside.sum())} of {len(table)} main cells: the re-run's mean CA and ASR both inside the committed "
          f"interval ({int(table['ca inside'].sum())} CA, {int(table['asr inside'].sum())} ASR); "
          f"{int((table['verdict'] == table['rerun verdict']).sum())} of {len(table)} verdicts unchanged; "
          f"{int(table['identical seeds'].sum())} of {int(len(table) * committed['n_seeds'].max())} seeds' ASR identical")


if __name__ == "__main__":
    main()
