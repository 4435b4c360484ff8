"""Stage `implant@<paradigm>-<attack>-s<seed>`: the upstream model the victim downloads.

    python stages/implant.py <paradigm> <attack> [--seed N]

The attacker's part of the paradigm: BadEncoder on the clean encoder, a source model trained on
poisoned source data, or nothing (the clean upstream is published as it is, and the attack
poisons the victim's own data in `downstream`). Writes models/<paradigm>-<attack>/s<seed>/upstream.safetensors
and a record of what the attacker can measure on its own data.
"""

from __future__ import annotations

from backdoorlab.config import load_params
from backdoorlab.layout import implant_record, published_file, upstream_file
from backdoorlab.paradigms.base import load_weights
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.paradigm import paradigm_context, save_trained
from backdoorlab.pipeline.victims import paradigm, victim_attack


def main() -> None:
    args = stage_arguments(__doc__, "paradigm", "attack", seeded=True)
    params = load_params()
    seed = replicate(params, args.seed)
    require_known(params, attack=args.attack, paradigm=args.paradigm)
    method, victim = paradigm(params, args.paradigm), f"{args.paradigm}-{args.attack}"
    ctx = paradigm_context(params, seed, args.paradigm, args.attack)
    upstream = load_weights(method.upstream_model(ctx.spec), upstream_file(args.paradigm)).to(ctx.device)
    attack = victim_attack(params, victim)
    save_trained(lambda: method.implant(upstream, attack, ctx), published_file(victim, seed),
                 implant_record(victim, seed), {"victim": victim, "seed": seed}, label=f"implant {victim} s{seed}")


if __name__ == "__main__":
    run_stage(main)
