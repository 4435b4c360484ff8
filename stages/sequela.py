"""Stage `sequela@<attack>-<defense>`: run every sequela attack on one cell's model.

    python stages/sequela.py <attack> <defense>

Raw numbers per cell (every metric of every instance); the report stage takes
``defended - undefended`` and picks the headline numbers for reports/summary.json.
"""

from __future__ import annotations

import sys

from backdoorlab.config import load_params
from backdoorlab.io import write_json
from backdoorlab.models import load_model
from backdoorlab.sequela_run import build_context, run_attacks
from backdoorlab.workspace import cell_dir, model_file, run_stage


def main() -> None:
    params = load_params()
    attack_name, defense_name = sys.argv[1], sys.argv[2]
    ctx = build_context(params, attack_name, params.clean_fraction(defense_name),
                        label=f"sequela {attack_name}-{defense_name}", with_shadows=True)
    model = load_model(ctx.spec, model_file(attack_name, defense_name)).to(ctx.device)
    results = run_attacks(params, attack_name, params.sequela.attacks, model, ctx)
    write_json(cell_dir(attack_name, defense_name) / "sequela.json", results)


if __name__ == "__main__":
    run_stage(main)
