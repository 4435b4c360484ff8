"""The papers' scale on one GPU: the paper profile's BadNets and Blended against none, FT, SFT and D3.

    make paper-check CIFAR=/path/to/cifar          # a folder holding cifar-10-batches-bin/
    python bench/paper_check.py --root DIR [--epochs 30] [--set key=value ...]
    python bench/paper_check.py --root DIR --compose-only   # write the params and stop (see below)

CIFAR-10 and PreAct-ResNet-18 with the field's benchmark settings (conf/profile/paper.yaml), seed 0,
run stage by stage as the DAG would (prepare, poison, train, defend), in a work folder of its own
and without DVC: the GPU machine lent to this project has PyTorch but neither DVC nor Hydra, so
the params are composed here (``--compose-only`` writes ``<work>/params.yaml``) and ``--params``
reads them there. A GPU machine without internet gets the data as a JPEG pack of at most 60 MB
(scripts/pack_cifar10.py pack / unpack).

Budget: the whole check must fit 10 minutes on one H100. The paper trains each victim for 100
epochs; ``--epochs`` (default 30, cosine schedule over the 30) is the documented reduction, and
the printed table says which was used. Every other setting is the profile's.

It prints, and writes to ``reports/paper_check/results.{json,md}``:

- the victims' training throughput (images/s over the whole training, per-epoch evaluation
  included) beside a bare PyTorch loop on the same GPU, model, batch and precision (random
  tensors already on the GPU: the loop's ceiling, no data pipeline);
- each cell's CA / ASR beside the D3 paper's published numbers (METHODS.md; FT's BadNets row is
  BackdoorBench's, SFT's Blended ASR Sha et al.'s).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "paper_check"
ATTACKS = ("badnets", "blended")
DEFENSES = ("none", "ft", "sft", "d3")
# Published CA / ASR (%) on CIFAR-10, PreAct-ResNet-18, 10% poisoning, 5% clean data (METHODS.md);
# None where the papers give no number.
PUBLISHED: dict[str, dict[str, tuple[float | None, float | None]]] = {
    "badnets": {"none": (91.32, 95.03), "ft": (89.96, 1.48), "sft": (None, None), "d3": (90.77, 0.74)},
    "blended": {"none": (None, 99.92), "ft": (None, 96.11), "sft": (None, 8.1), "d3": (92.29, 0.22)},
}


def compose(root: str, epochs: int, overrides: list[str]) -> dict[str, Any]:
    """The paper profile with the data at ``root``, ``epochs`` training epochs, one seed, and
    ``overrides`` (``key.sub=value``, values read as YAML)."""
    from backdoorlab.compose import composed  # needs DVC's Hydra: run where the project is installed

    params = composed(["profile=paper"], ROOT)
    params["data"]["options"].update(root=str(Path(root).resolve()), download=False)
    params["train"]["epochs"] = epochs
    params["grid"]["seeds"] = [0]
    for override in overrides:
        key, _, value = override.partition("=")
        *parents, last = key.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = yaml.safe_load(value)
    return params


def stage(work: Path, *args: str) -> float:
    """Run one stage script in ``work``; its wall seconds. A failure stops the check with its output."""
    started = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, str(ROOT / "stages" / f"{args[0]}.py"), *args[1:]], cwd=work, env=env,
                            capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"paper check: stage {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def bare_loop(params: dict[str, Any], work: Path, steps: int = 50) -> float:
    """Images/s of a plain SGD loop on the victim's model, batch and precision: random data already
    on the device, no augmentation, no evaluation."""
    from backdoorlab.config import parse_params
    from backdoorlab.models.base import ModelSpec, build_model
    from backdoorlab.training.loop import autocast_dtype

    parsed = parse_params(params)
    meta = json.loads((work / "data/prepared/meta.json").read_text())
    channels, size, _ = meta["image_shape"]
    spec = ModelSpec(parsed.model_arch, parsed.model_params, channels, size, meta["num_classes"],
                     tuple(meta["mean"]), tuple(meta["std"]))
    device = torch.device("cuda" if torch.cuda.is_available() and parsed.device != "cpu" else "cpu")
    model = build_model(spec).to(device)
    batch = parsed.raw["train"]["batch_size"]
    x = torch.rand(batch, channels, size, size, device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, meta["num_classes"], (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    dtype = autocast_dtype(parsed.raw["train"].get("precision", "auto"), device)

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(5):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started)


def cell(work: Path, attack: str, defense: str) -> dict[str, Any]:
    record = json.loads((work / f"reports/records/cells/{attack}-{defense}/s0/defense.json").read_text())
    ca, asr = PUBLISHED[attack][defense]
    return {"attack": attack, "defense": defense, "ca": 100 * record["ca"], "asr": 100 * record["asr"],
            "collapsed": record["collapsed"], "seconds": record["seconds"], "paper_ca": ca, "paper_asr": asr}


def markdown(results: dict[str, Any]) -> str:
    def number(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    lines = [f"# Paper-scale check ({results['device']}, {results['epochs']} of the paper's 100 training epochs)", "",
             f"Victims' training: {results['train_images_per_second']:.0f} images/s (per-epoch evaluation included) "
             f"against a bare PyTorch loop's {results['bare_images_per_second']:.0f} images/s on the same GPU, model, "
             f"batch and precision. Whole check: {results['seconds']:.0f} s.", "",
             "| attack | defense | CA % | ASR % | paper CA % | paper ASR % |", "|---|---|---|---|---|---|"]
    for row in results["cells"]:
        flag = " (collapsed)" if row["collapsed"] else ""
        lines.append(f"| {row['attack']} | {row['defense']} | {number(row['ca'])}{flag} | {number(row['asr'])} | "
                     f"{number(row['paper_ca'])} | {number(row['paper_asr'])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--root", help="a folder holding cifar-10-batches-bin/")
    parser.add_argument("--params", type=Path, help="params composed earlier (--compose-only), instead of --root")
    parser.add_argument("--epochs", type=int, default=30, help="training epochs of each victim (paper: 100)")
    parser.add_argument("--work", type=Path, default=Path("paper-check"), help="the work folder (created)")
    parser.add_argument("--out", type=Path, default=OUT, help="where results.{json,md} go")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more overrides (tests: tiny sizes)")
    parser.add_argument("--compose-only", action="store_true", help="write <work>/params.yaml and stop")
    args = parser.parse_args()
    if args.params is None and args.root is None:
        parser.error("give --root (a folder holding cifar-10-batches-bin/) or --params")
    args.work.mkdir(parents=True, exist_ok=True)
    params = (yaml.safe_load(args.params.read_text()) if args.params
              else compose(args.root, args.epochs, args.set))
    batches = Path(params["data"]["options"]["root"]) / "cifar-10-batches-bin"
    if not args.compose_only and not (batches / "test_batch.bin").is_file():
        sys.exit(f"paper check: {batches}/test_batch.bin: missing (unpack the CIFAR-10 pack there first)")
    (args.work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    if args.compose_only:
        print(f"paper check: params written to {args.work / 'params.yaml'}")
        return

    started = time.perf_counter()
    stage(args.work, "prepare")
    for attack in ATTACKS:
        stage(args.work, "poison", attack)
        stage(args.work, "train", attack)
        for defense in DEFENSES:
            stage(args.work, "defend", attack, defense)
            print(f"paper check: {attack} x {defense} done ({time.perf_counter() - started:.0f} s)", flush=True)
    timings = [json.loads((args.work / f"reports/records/train/{a}/s0/timing.json").read_text()) for a in ATTACKS]
    results = {
        "device": timings[0]["device"], "compute_dtype": timings[0]["compute_dtype"],
        "epochs": params["train"]["epochs"], "seconds": time.perf_counter() - started,
        "train_images_per_second": sum(t["images_per_second"] for t in timings) / len(timings),
        "bare_images_per_second": bare_loop(params, args.work),
        "cells": [cell(args.work, a, d) for a in ATTACKS for d in DEFENSES],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    print(markdown(results))


if __name__ == "__main__":
    main()
