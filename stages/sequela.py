"""Stage `sequela@<attack>-<defense>`: run every sequela attack on one cell's model.

    python stages/sequela.py <attack> <defense>

Raw numbers per cell; the report stage takes ``defended - undefended``.
"""

from __future__ import annotations

import sys
import time

import torch

from backdoorlab.config import derive_seed, generator_for, load_params
from backdoorlab.io import write_json
from backdoorlab.models import load_model
from backdoorlab.sequela import SequelaContext
from backdoorlab.settings import require
from backdoorlab.workspace import (cell_dir, load_poisoned, load_splits, model_file, model_spec,
                                   run_stage)


def main() -> None:
    params = load_params()
    attack_name, defense_name = sys.argv[1], sys.argv[2]
    device = params.torch_device()
    splits = load_splits()
    poisoned = load_poisoned(attack_name)
    spec = model_spec(params)
    model = load_model(spec, model_file(attack_name, defense_name)).to(device)

    # Members: training samples the model saw unpoisoned; non-members: held-out test samples.
    # The draw depends on the attack only, so every defense of one attack is probed identically.
    n = params.sequela.samples
    clean_mask = torch.ones(len(poisoned.train), dtype=torch.bool)
    clean_mask[poisoned.poison_indices] = False
    member_pool = torch.nonzero(clean_mask).flatten()
    members = member_pool[torch.randperm(len(member_pool), generator=generator_for(params.seed, "mia", attack_name))]
    non_members = torch.randperm(len(splits.test), generator=generator_for(params.seed, "mia", attack_name, "out"))
    require(len(members) >= 2 * n and len(non_members) >= 2 * n, "sequela.samples",
            f"{n} needs {2 * n} members and non-members; have {len(members)} and {len(non_members)}")

    torch.manual_seed(derive_seed(params.seed, "sequela", attack_name, defense_name))
    ctx = SequelaContext(
        spec=spec, device=device, generator=generator_for(params.seed, "sequela", attack_name, defense_name),
        members=splits.train.subset(members[:n]), non_members=splits.test.subset(non_members[:n]),
        calibration_members=splits.train.subset(members[n:2 * n]),
        calibration_non_members=splits.test.subset(non_members[n:2 * n]),
        clean_test=splits.test, attack=params.attacks[attack_name],
        defense_data=splits.defense_subset(params.clean_fraction(defense_name)),
        label=f"sequela {attack_name}-{defense_name}",
    )
    results: dict[str, float] = {}
    for name, sequela_attack in params.sequela.attacks.items():
        started = time.perf_counter()
        for metric, value in sequela_attack.run(model, ctx).items():
            results[f"{name}.{metric}"] = value
        results[f"{name}.seconds"] = time.perf_counter() - started
        print(f"[{ctx.label}] {name} done ({results[f'{name}.seconds']:.1f} s)", file=sys.stderr)
    write_json(cell_dir(attack_name, defense_name) / "sequela.json", results)


if __name__ == "__main__":
    run_stage(main)
