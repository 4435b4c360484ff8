"""Stage `train_clean[@<regime>]`: a model trained with the same recipe on the unpoisoned training data.

    python stages/train_clean.py [regime]

The counterfactual of the backdoored models: the re-injection baseline starts from it (how fast
does a model that never had a backdoor acquire one from k poisoned samples?). For a regime, the
regime's training images and recipe, as its victims have.
"""

from __future__ import annotations

import time

from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import write_json
from backdoorlab.layout import regime_clean_model_file, regime_records
from backdoorlab.models.base import save_model
from backdoorlab.pipeline.cli import require_known, run_stage, stage_arguments
from backdoorlab.pipeline.victims import load_splits, model_spec, regime_recipe, regime_training_set
from backdoorlab.training.loop import accuracy
from backdoorlab.training.recipe import init_model, train_with_recipe


def main() -> None:
    regime = stage_arguments(__doc__, "regime?").regime
    params = load_params()
    require_known(params, regime=regime)
    device = params.torch_device()
    splits = load_splits()
    data, recipe = regime_training_set(params, regime, splits), regime_recipe(params, regime)
    name = "clean" if regime is None else f"{regime}-clean"  # the default run's seeds as before regimes existed
    model = init_model(model_spec(params), derive_seed(params.seed, "init", name), device)
    started = time.perf_counter()
    train_with_recipe(model, data, recipe, generator=generator_for(params.seed, "train", name),
                      device=device, label=f"train {name}")
    seconds = time.perf_counter() - started
    save_model(model, regime_clean_model_file(regime))
    ca = accuracy(model, splits.test, device)
    write_json(regime_records(regime) / "baseline" / "clean_model.json", {"ca": ca, "seconds": seconds, "epochs": recipe.epochs})
    print(f"train {name}: CA {ca:.3f} ({seconds:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
