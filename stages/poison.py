"""Stage `poison@<victim>-s<seed>`: fit the trigger if the attack needs to, then stamp it on a seeded
fraction of the training set.

    python stages/poison.py <attack> [--seed N]

``<attack>`` may be a regime's victim ``<regime>-<attack>``: the attack, on the regime's training images.
The seed is the replicate (``grid.seeds``): it draws the poisoned subset and the trigger's fit.

An attack that fits its trigger (LF's universal perturbation, SSBA's encoder) does it here, on the
attacker's own data (the shadow split: disjoint from the victim's training and test images), so a
change to any defense or to the victim's training never re-fits it.
"""

from __future__ import annotations

import torch

from backdoorlab.attacks.base import AttackerResources
from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.layout import poisoned_dir, train_report_dir
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.victims import load_splits, model_spec, victim_attack, victim_training_set


def main() -> None:
    args = stage_arguments(__doc__, "attack", seeded=True)
    params = load_params()
    name, seed = args.attack, replicate(params, args.seed)
    require_known(params, attack=name)
    attack = victim_attack(params, name)
    splits = load_splits()
    torch.manual_seed(derive_seed(seed, "attacker", name))
    attack.prepare(AttackerResources(data=splits.shadow, spec=model_spec(params), device=params.torch_device(),
                                     generator=generator_for(seed, "attacker", name)))
    poisoned = attack.poison(victim_training_set(params, name, splits), generator_for(seed, "poison", name))
    triggered = attack.triggered_test(splits.test)

    folder = poisoned_dir(name, seed)
    save_tensors(folder / "train.safetensors",
                 {**poisoned.train.to_tensors("train"), "poison_indices": poisoned.poison_indices})
    save_tensors(folder / "trigger.safetensors", attack.state_tensors())
    write_json(train_report_dir(params, name, seed) / "poison.json", {
        "attack": name, "seed": seed, "target": attack.target, "label_mode": attack.config.label_mode,
        "poisoned": len(poisoned.poison_indices), "train_size": len(poisoned.train),
        "triggered_test_size": len(triggered),
    })
    print(f"poison {name} (seed {seed}): {len(poisoned.poison_indices)} of {len(poisoned.train)} training images poisoned")


if __name__ == "__main__":
    run_stage(main)
