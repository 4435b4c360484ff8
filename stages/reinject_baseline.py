"""Stage `reinject_baseline@<attack>`: the re-injection attack on the model trained without poison.

    python stages/reinject_baseline.py <attack>

Runs every ``reinject`` instance of ``sequela.attacks`` exactly as the sequela cells do (same
defense subset at ``data.defense_fraction``, same poisoned samples, same seeds) on
models/clean.safetensors (for a paradigm's victim ``<paradigm>-<attack>``: the paradigm's clean
counterpart): the yardstick a defended model's re-injection curve is compared to.
"""

from __future__ import annotations

from backdoorlab.config import load_params
from backdoorlab.io import write_json
from backdoorlab.models import load_model
from backdoorlab.sequela.reinject import Reinjection
from backdoorlab.sequela_run import build_context, run_attacks
from backdoorlab.workspace import baseline_dir, clean_model_file, require_known, run_stage, stage_arguments


def main() -> None:
    attack_name = stage_arguments(__doc__, "attack").attack
    params = load_params()
    require_known(params, attack=attack_name)
    attacks = {name: a for name, a in params.sequela.attacks.items() if isinstance(a, Reinjection)}
    ctx = build_context(params, attack_name, params.data.defense_fraction,
                        label=f"reinject baseline {attack_name}", with_shadows=False)
    model = load_model(ctx.spec, clean_model_file(params, attack_name)).to(ctx.device)
    results, _ = run_attacks(params, attack_name, attacks, model, ctx)
    write_json(baseline_dir(params, attack_name) / "reinject.json", results)


if __name__ == "__main__":
    run_stage(main)
