"""Stage `train_clean`: a model trained with the same recipe on the unpoisoned training split.

    python stages/train_clean.py

The counterfactual of the backdoored models: the re-injection baseline starts from it (how fast
does a model that never had a backdoor acquire one from k poisoned samples?).
"""

from __future__ import annotations

import time

from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import write_json
from backdoorlab.models import save_model
from backdoorlab.training.loop import accuracy
from backdoorlab.training.recipe import init_model, train_with_recipe
from backdoorlab.workspace import CLEAN_MODEL, RECORDS, load_splits, model_spec, run_stage, stage_arguments


def main() -> None:
    stage_arguments(__doc__)
    params = load_params()
    device = params.torch_device()
    splits = load_splits()
    model = init_model(model_spec(params), derive_seed(params.seed, "init", "clean"), device)
    started = time.perf_counter()
    train_with_recipe(model, splits.train, params.train, generator=generator_for(params.seed, "train", "clean"),
                      device=device, label="train clean")
    seconds = time.perf_counter() - started
    save_model(model, CLEAN_MODEL)
    ca = accuracy(model, splits.test, device)
    write_json(RECORDS / "baseline" / "clean_model.json", {"ca": ca, "seconds": seconds, "epochs": params.train.epochs})
    print(f"train clean: CA {ca:.3f} ({seconds:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
