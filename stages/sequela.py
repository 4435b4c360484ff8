"""Stage `sequela@<attack>-<defense>`: run every sequela attack on one cell's model.

    python stages/sequela.py <attack> <defense>

Raw numbers per cell (every metric of every instance), and the membership attacks' per-sample
scores; the report stage takes ``defended - undefended``, resamples the scores for standard errors,
and picks the headline numbers for reports/summary.json.
"""

from __future__ import annotations

from backdoorlab.config import load_params
from backdoorlab.io import save_tensors, write_json
from backdoorlab.models import load_model
from backdoorlab.sequela_run import build_context, run_attacks
from backdoorlab.workspace import cell_dir, model_file, require_known, run_stage, stage_arguments


def main() -> None:
    args = stage_arguments(__doc__, "attack", "defense")
    params = load_params()
    require_known(params, attack=args.attack, defense=args.defense)
    attack_name, defense_name = args.attack, args.defense
    ctx = build_context(params, attack_name, params.clean_fraction(defense_name),
                        label=f"sequela {attack_name}-{defense_name}", with_shadows=True)
    model = load_model(ctx.spec, model_file(attack_name, defense_name)).to(ctx.device)
    results, scores = run_attacks(params, attack_name, params.sequela.attacks, model, ctx)
    folder = cell_dir(params, attack_name, defense_name)
    save_tensors(folder / "membership_scores.safetensors", scores)
    write_json(folder / "sequela.json", results)


if __name__ == "__main__":
    run_stage(main)
