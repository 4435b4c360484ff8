"""Standard errors of the membership-inference numbers, by bootstrap over the evaluation samples.

Every defense of one attack (victim) is probed with the same members and non-members (the sequela
stage draws them per attack), so one set of resamples, drawn per attack, serves all of its cells:
the spread of a cell's AUC over the resamples is its standard error, and the spread of the
*difference* to the undefended model over the same resamples is the standard error of the
defense's change (a paired bootstrap: sampling noise the two models share cancels).
"""

from __future__ import annotations

import torch

from backdoorlab.config import Params, Scope, generator_for
from backdoorlab.io import load_tensors
from backdoorlab.sequela.scores import bootstrap_draws, bootstrap_metrics
from backdoorlab.workspace import cell_dir

# {attack: {defense: {"<instance>[.<score>].<metric>": (standard error, standard error of the change)}}}
Uncertainty = dict[str, dict[str, dict[str, tuple[float, float]]]]
SCORES_FILE = "membership_scores.safetensors"


def score_sets(scores: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"<instance>[.<score>]": (members, non_members)}`` from a cell's scores file."""
    prefixes = sorted({key.rsplit("/", 1)[0] for key in scores})
    return {prefix: (scores[f"{prefix}/members"], scores[f"{prefix}/non_members"]) for prefix in prefixes}


def membership_uncertainty(params: Params, scope: Scope) -> Uncertainty:
    """Standard errors of every membership AUC and TPR (at the rates its instance reports) of the
    scope's main cells, and of their change against ``none``."""
    out: Uncertainty = {}
    defenses = params.grid.main_cells(scope)
    for attack in params.grid.attack_list(scope):
        sets = {d: score_sets(load_tensors(cell_dir(params, attack, d) / SCORES_FILE)) for d in defenses}
        out[attack] = {d: {} for d in defenses}
        generator = generator_for(params.seed, "bootstrap", attack)
        for prefix, (members, non_members) in sets["none"].items():
            resamples = bootstrap_draws(len(members), len(non_members), params.report.bootstrap, generator)
            fprs = params.sequela.attacks[prefix.partition(".")[0]].fprs()  # a membership attack: it kept scores
            before = bootstrap_metrics(members, non_members, resamples, fprs)
            for defense in defenses:
                after = bootstrap_metrics(*sets[defense][prefix], resamples, fprs)
                for metric, values in after.items():
                    change = values - before[metric]
                    out[attack][defense][f"{prefix}.{metric}"] = (values.std().item(), change.std().item())
    return out
