"""Stage `poison@<attack>`: stamp the trigger on a seeded fraction of the training set.

    python stages/poison.py <attack>
"""

from __future__ import annotations

from backdoorlab.config import generator_for, load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.reporting.figures import trigger_preview
from backdoorlab.workspace import (load_splits, poisoned_dir, require_known, run_stage, stage_arguments,
                                   train_report_dir, trigger_preview_file)


def main() -> None:
    name = stage_arguments(__doc__, "attack").attack
    params = load_params()
    require_known(params, attack=name)
    attack = params.attacks[name]
    splits = load_splits()
    poisoned = attack.poison(splits.train, generator_for(params.seed, "poison", name))
    triggered = attack.triggered_test(splits.test)

    folder = poisoned_dir(name)
    save_tensors(folder / "train.safetensors",
                 {**poisoned.train.to_tensors("train"), "poison_indices": poisoned.poison_indices})
    save_tensors(folder / "triggered_test.safetensors", triggered.to_tensors("test"))
    save_tensors(folder / "trigger.safetensors", attack.trigger_tensors())
    trigger_preview(splits.test.images[:6], attack.apply_trigger(splits.test.images[:6]),
                    trigger_preview_file(name), title=name)
    write_json(train_report_dir(name) / "poison.json", {
        "attack": name, "target": attack.target, "poisoned": len(poisoned.poison_indices),
        "train_size": len(poisoned.train), "triggered_test_size": len(triggered),
    })
    print(f"poison {name}: {len(poisoned.poison_indices)} of {len(poisoned.train)} training images poisoned")


if __name__ == "__main__":
    run_stage(main)
