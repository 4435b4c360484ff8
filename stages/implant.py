"""Stage `implant@<paradigm>-<attack>`: the upstream model the victim downloads.

    python stages/implant.py <paradigm> <attack>

The attacker's part of the paradigm: BadEncoder on the clean encoder, a source model trained on
poisoned source data, or nothing (the clean upstream is published as it is, and the attack
poisons the victim's own data in `downstream`). Writes models/<paradigm>-<attack>/upstream.safetensors
and a record of what the attacker can measure on its own data.
"""

from __future__ import annotations

import time

from backdoorlab.config import load_params
from backdoorlab.io import write_json
from backdoorlab.models import save_model
from backdoorlab.paradigms.base import load_weights
from backdoorlab.workspace import (paradigm_context, paradigm_records, published_file, require_known, run_stage,
                                   stage_arguments, upstream_file)


def main() -> None:
    args = stage_arguments(__doc__, "paradigm", "attack")
    params = load_params()
    require_known(params, attack=args.attack, paradigm=args.paradigm)
    paradigm, victim = params.paradigms[args.paradigm], f"{args.paradigm}-{args.attack}"
    ctx = paradigm_context(params, args.paradigm, args.attack)
    upstream = load_weights(paradigm.upstream_model(ctx.spec), upstream_file(args.paradigm)).to(ctx.device)
    started = time.perf_counter()
    trained = paradigm.implant(upstream, params.paradigm_attack(args.paradigm, args.attack), ctx)
    seconds = time.perf_counter() - started
    save_model(trained.model, published_file(victim))
    write_json(paradigm_records("implant", victim), {"victim": victim, **trained.notes, "seconds": seconds})
    print(f"implant {victim}: {trained.notes} ({seconds:.1f} s)")


if __name__ == "__main__":
    run_stage(main)
