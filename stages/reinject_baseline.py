"""Stage `reinject_baseline@<victim>-s<seed>`: the re-injection attack on the model trained without poison.

    python stages/reinject_baseline.py <attack> [--seed N]

Runs every ``reinject`` instance of ``sequela.attacks`` exactly as the sequela cells of the same
victim and seed do (same defense subset at ``data.defense_fraction``, same poisoned samples, same
seeds) on models/clean.safetensors (for a paradigm's victim ``<paradigm>-<attack>``: the paradigm's
clean counterpart): the yardstick a defended model's re-injection curve is compared to.
"""

from __future__ import annotations

from backdoorlab.config import load_params
from backdoorlab.io import write_json
from backdoorlab.layout import baseline_dir, clean_model_file
from backdoorlab.models.base import load_model
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.sequela import build_context, run_attacks, sequela_settings


def main() -> None:
    args = stage_arguments(__doc__, "attack", seeded=True)
    params = load_params()
    victim, seed = args.attack, replicate(params, args.seed)
    require_known(params, attack=victim)
    settings = sequela_settings(params, methods={"reinject"})
    ctx = build_context(params, settings, victim, seed, params.data.defense_fraction,
                        label=f"reinject baseline {victim} s{seed}", with_shadows=False)
    model = load_model(ctx.spec, clean_model_file(params, victim)).to(ctx.device)
    results, _ = run_attacks(victim, seed, settings.attacks, model, ctx)
    write_json(baseline_dir(params, victim, seed) / "reinject.json", results)


if __name__ == "__main__":
    run_stage(main)
