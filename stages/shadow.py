"""Stage `shadow`: the membership attacker's shadow models, trained once for every cell.

    python stages/shadow.py

Each shadow model gets its own seeded split of ``splits.shadow`` (data the target never saw):
one half to train on with the target's recipe (``train``; ``sequela.shadow.epochs`` may
override the epochs), the other half as its known non-members. Writes the models, the splits with
each model's logits on both halves (all the attack needs, so no cell re-runs the shadow models),
and each model's accuracy on both halves (the train-test gap the attack feeds on).
"""

from __future__ import annotations

import time

import torch

from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.models import save_model
from backdoorlab.settings import require
from backdoorlab.training.loop import predict_logits
from backdoorlab.training.recipe import init_model, train_with_recipe
from backdoorlab.workspace import (RECORDS, SHADOW_SPLITS, load_splits, model_spec, run_stage, shadow_model_file,
                                   stage_arguments)


def accuracy_of(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return (logits.argmax(1) == labels).float().mean().item()


def main() -> None:
    stage_arguments(__doc__)
    params = load_params()
    settings = params.sequela.shadow
    device = params.torch_device()
    shadow = load_splits().shadow
    half = len(shadow) // 2
    require(half > 0, "data.shadow_size", "the shadow models need at least 2 images")

    members, non_members, stats = [], [], []
    member_logits, non_member_logits = [], []
    for i in range(settings.models):
        started = time.perf_counter()
        order = torch.randperm(len(shadow), generator=generator_for(params.seed, "shadow", str(i), "split"))
        members.append(order[:half])
        non_members.append(order[half:2 * half])
        model = init_model(model_spec(params), derive_seed(params.seed, "shadow", str(i), "init"), device)
        train_with_recipe(model, shadow.subset(members[-1]), params.train, epochs=settings.epochs,
                          generator=generator_for(params.seed, "shadow", str(i), "train"), device=device,
                          on_epoch=lambda epoch, loss: None, label=f"shadow {i}")
        save_model(model, shadow_model_file(i))
        member_logits.append(predict_logits(model, shadow.images[members[-1]], device))
        non_member_logits.append(predict_logits(model, shadow.images[non_members[-1]], device))
        stats.append({"train_acc": accuracy_of(member_logits[-1], shadow.labels[members[-1]]),
                      "test_acc": accuracy_of(non_member_logits[-1], shadow.labels[non_members[-1]]),
                      "seconds": time.perf_counter() - started})
        print(f"shadow {i}: train acc {stats[-1]['train_acc']:.3f}, held-out acc {stats[-1]['test_acc']:.3f} "
              f"({stats[-1]['seconds']:.1f} s)")
    save_tensors(SHADOW_SPLITS, {"members": torch.stack(members), "non_members": torch.stack(non_members),
                                 "member_logits": torch.stack(member_logits),
                                 "non_member_logits": torch.stack(non_member_logits)})
    write_json(RECORDS / "shadow.json", {"images_per_model": half, "models": stats})


if __name__ == "__main__":
    run_stage(main)
