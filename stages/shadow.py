"""Stage `shadow[@<regime>]`: the membership attacker's shadow models, trained once for every cell.

    python stages/shadow.py [regime]

Each shadow model gets its own seeded half of ``splits.shadow`` (data the target never saw) to
train on, with the target's recipe (``train``, or ``regimes.<regime>.train`` for a regime's
victims; ``sequela.shadow.epochs`` may override the epochs); the other half are its known
non-members. Writes the models, which half each trained on, and each model's logits on the whole
split (the shadow-model attack learns from those, RMIA compares against them, so no cell re-runs
the shadow models on their own data), and each model's accuracy on both halves (the train-test gap
the attacks feed on).
"""

from __future__ import annotations

import time

import torch

from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.layout import regime_records, shadow_model_file, shadow_splits_file
from backdoorlab.models.base import save_model
from backdoorlab.pipeline.cli import require_known, run_stage, stage_arguments
from backdoorlab.pipeline.victims import load_splits, model_spec, regime_recipe
from backdoorlab.sequela.base import ShadowSettings
from backdoorlab.settings import parse_section, require
from backdoorlab.training.loop import predict_logits
from backdoorlab.training.recipe import init_model, train_with_recipe


def accuracy_of(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def main() -> None:
    regime = stage_arguments(__doc__, "regime?").regime
    params = load_params()
    require_known(params, regime=regime)
    settings = parse_section(ShadowSettings, params.section("sequela").get("shadow"), "sequela.shadow")
    recipe = regime_recipe(params, regime)
    device = params.torch_device()
    shadow = load_splits().shadow
    half = len(shadow) // 2
    require(half > 0, "data.shadow_size", "the shadow models need at least 2 images")
    # seeds named as before regimes existed, so the default run's shadow models stay the same
    names = [str(i) if regime is None else f"{regime}/{i}" for i in range(settings.models)]

    trained_on, logits, stats = [], [], []
    for i, name in enumerate(names):
        started = time.perf_counter()
        order = torch.randperm(len(shadow), generator=generator_for(params.seed, "shadow", name, "split"))
        trained_on.append(torch.zeros(len(shadow), dtype=torch.bool).index_fill_(0, order[:half], True))
        model = init_model(model_spec(params), derive_seed(params.seed, "shadow", name, "init"), device)
        train_with_recipe(model, shadow.subset(order[:half]), recipe, epochs=settings.epochs,
                          generator=generator_for(params.seed, "shadow", name, "train"), device=device,
                          on_epoch=lambda epoch, loss: None, label=f"shadow {name}")
        save_model(model, shadow_model_file(regime, i))
        logits.append(predict_logits(model, shadow.images, device))
        seen = trained_on[-1]
        stats.append({"train_acc": accuracy_of(logits[-1][seen], shadow.labels[seen]),
                      "test_acc": accuracy_of(logits[-1][~seen], shadow.labels[~seen]),
                      "seconds": time.perf_counter() - started})
        print(f"shadow {name}: train acc {stats[-1]['train_acc']:.3f}, held-out acc {stats[-1]['test_acc']:.3f} "
              f"({stats[-1]['seconds']:.1f} s)")
    save_tensors(shadow_splits_file(regime), {"trained_on": torch.stack(trained_on), "logits": torch.stack(logits)})
    write_json(regime_records(regime) / "shadow.json", {"images_per_model": half, "models": stats})


if __name__ == "__main__":
    run_stage(main)
