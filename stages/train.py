"""Stage `train@<victim>-s<seed>`: train the backdoored model from scratch on the poisoned data.

    python stages/train.py <attack> [--seed N]

``<attack>`` may be a regime's victim ``<regime>-<attack>``, trained with the regime's recipe. The
seed is the replicate (``grid.seeds``): it draws the initialisation and the batch order.

Writes the model (safetensors), the attack's final trigger state (an attack that controls training,
such as WaNet or the input-aware generator, takes part through its batch hook), per-epoch curves
(loss, CA, ASR; a `dvc plots` TSV), the undefended model's metrics, which every defense cell of this
victim is compared against (and so hold only what the computation determines), and, apart, the
wall time and throughput.
"""

from __future__ import annotations

import time

import torch

from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import save_tensors, write_json, write_table
from backdoorlab.layout import curves_file, model_file, train_report_dir, trigger_file, trigger_preview_file
from backdoorlab.metrics import backdoor_metrics
from backdoorlab.models.base import save_model
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.victims import load_attack, load_poisoned, load_splits, model_spec, training_recipe
from backdoorlab.progress import Progress
from backdoorlab.reporting.figures import trigger_preview
from backdoorlab.training.loop import autocast_dtype
from backdoorlab.training.recipe import init_model, train_with_recipe


def main() -> None:
    args = stage_arguments(__doc__, "attack", seeded=True)
    params = load_params()
    name, seed = args.attack, replicate(params, args.seed)
    require_known(params, attack=name)
    attack = load_attack(params, name, seed, state="prepared")
    device = params.torch_device()
    splits = load_splits()
    poisoned = load_poisoned(name, seed)
    cfg = training_recipe(params, name)

    model = init_model(model_spec(params), derive_seed(seed, "init", name), device)
    curves: list[dict[str, float]] = []
    progress = Progress(f"train {name} s{seed}")

    def on_epoch(epoch: int, loss: float) -> None:
        m = backdoor_metrics(model, splits.test, attack.triggered_test(splits.test), device)
        curves.append({"epoch": epoch, "loss": round(loss, 5), "ca": round(m["ca"], 5), "asr": round(m["asr"], 5)})
        progress.log(f"epoch {epoch}/{cfg.epochs} loss {loss:.4f} CA {m['ca']:.3f} ASR {m['asr']:.3f}")

    started = time.perf_counter()
    train_with_recipe(model, poisoned.train, cfg, generator=generator_for(seed, "train", name),
                      device=device, on_epoch=on_epoch, label=f"train {name}",
                      batch_hook=attack.training_hook(generator_for(seed, "hook", name), device))
    seconds = time.perf_counter() - started

    final = backdoor_metrics(model, splits.test, attack.triggered_test(splits.test), device)
    save_model(model, model_file(name, seed, "backdoored"))
    save_tensors(trigger_file(name, seed), attack.state_tensors())
    trigger_preview(splits.test.images[:6], attack.apply_trigger(splits.test.images[:6]),
                    trigger_preview_file(params, name, seed), title=f"{name}, seed {seed}")  # the trigger as trained
    folder = train_report_dir(params, name, seed)
    write_table(curves_file(name, seed), curves, delimiter="\t")
    write_json(folder / "metrics.json", final)
    write_json(folder / "timing.json", {
        "seconds": seconds, "epochs": cfg.epochs,
        "images_per_second": cfg.epochs * len(poisoned.train) / max(seconds, 1e-9),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "compute_dtype": str(autocast_dtype(cfg.precision, device) or torch.float32).removeprefix("torch."),
    })


if __name__ == "__main__":
    run_stage(main)
