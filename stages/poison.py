"""Stage `poison@<attack>`: fit the trigger if the attack needs to, then stamp it on a seeded
fraction of the training set.

    python stages/poison.py <attack>

``<attack>`` may be a regime's victim ``<regime>-<attack>``: the attack, on the regime's training images.

An attack that fits its trigger (LF's universal perturbation, SSBA's encoder) does it here, on the
attacker's own data (the shadow split: disjoint from the victim's training and test images), so a
change to any defense or to the victim's training never re-fits it.
"""

from __future__ import annotations

import torch

from backdoorlab.attacks import AttackerResources
from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.workspace import (attack_of, load_splits, model_spec, poisoned_dir, require_known, run_stage,
                                   stage_arguments, train_report_dir, victim_training_set)


def main() -> None:
    name = stage_arguments(__doc__, "attack").attack
    params = load_params()
    require_known(params, attack=name)
    attack = params.attacks[attack_of(params, name)]
    splits = load_splits()
    torch.manual_seed(derive_seed(params.seed, "attacker", name))
    attack.prepare(AttackerResources(data=splits.shadow, spec=model_spec(params), device=params.torch_device(),
                                     generator=generator_for(params.seed, "attacker", name)))
    poisoned = attack.poison(victim_training_set(params, name, splits), generator_for(params.seed, "poison", name))
    triggered = attack.triggered_test(splits.test)

    folder = poisoned_dir(name)
    save_tensors(folder / "train.safetensors",
                 {**poisoned.train.to_tensors("train"), "poison_indices": poisoned.poison_indices})
    save_tensors(folder / "trigger.safetensors", attack.state_tensors())
    write_json(train_report_dir(params, name) / "poison.json", {
        "attack": name, "target": attack.target, "label_mode": attack.config.label_mode,
        "poisoned": len(poisoned.poison_indices), "train_size": len(poisoned.train),
        "triggered_test_size": len(triggered),
    })
    print(f"poison {name}: {len(poisoned.poison_indices)} of {len(poisoned.train)} training images poisoned")


if __name__ == "__main__":
    run_stage(main)
