"""Stage `sequela@<victim>-<defense>-s<seed>`: run every sequela attack on one cell's model.

    python stages/sequela.py <attack> <defense> [--seed N]

Raw numbers per cell (every metric of every instance), and the membership attacks' per-sample
scores; the report stage takes ``defended - undefended`` within each seed, resamples the scores for
standard errors, combines the seeds, and picks the headline numbers for reports/summary.json.
"""

from __future__ import annotations

from backdoorlab.config import load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.layout import SCORES_FILE, cell_dir, model_file
from backdoorlab.models.base import load_model
from backdoorlab.pipeline.cli import replicate, require_known, run_stage, stage_arguments
from backdoorlab.pipeline.sequela import build_context, run_attacks, sequela_settings


def main() -> None:
    args = stage_arguments(__doc__, "attack", "defense", seeded=True)
    params = load_params()
    seed = replicate(params, args.seed)
    require_known(params, attack=args.attack, defense=args.defense)
    victim, defense = args.attack, args.defense
    settings = sequela_settings(params)
    ctx = build_context(params, settings, victim, seed, params.clean_fraction(defense),
                        label=f"sequela {victim}-{defense} s{seed}", with_shadows=True)
    model = load_model(ctx.spec, model_file(victim, seed, defense)).to(ctx.device)
    results, scores = run_attacks(victim, seed, settings.attacks, model, ctx)
    folder = cell_dir(params, victim, defense, seed)
    save_tensors(folder / SCORES_FILE, scores)
    write_json(folder / "sequela.json", results)


if __name__ == "__main__":
    run_stage(main)
