"""Standard errors of the sequela numbers over seeds; for membership inference, with the bootstrap within a seed.

Within one seed, every defense of one victim is probed with the same members and non-members (the
sequela stage draws them per victim and seed), so one set of resamples, drawn per victim and seed,
serves all of its cells: the spread of a cell's AUC over the resamples is its standard error, and
the spread of the *difference* to the undefended model over the same resamples is the standard
error of the defense's change (a paired bootstrap: sampling noise the two models share cancels).
Over seeds, the mean's standard error is the seeds' spread, never less than their bootstrap noise
(:func:`backdoorlab.reporting.verdicts.combined_error`). The other sequela numbers (robust accuracy,
re-injection ASR) have no sampling model here, so their standard error is the seeds' spread alone
(:func:`seed_spread_uncertainty`).
"""

from __future__ import annotations

import torch

from backdoorlab.config import Params, Scope, generator_for
from backdoorlab.io import load_tensors
from backdoorlab.layout import SCORES_FILE, cell_dir
from backdoorlab.reporting.summary import SequelaBySeed, seeds
from backdoorlab.reporting.verdicts import combined_error
from backdoorlab.sequela.base import SequelaSettings
from backdoorlab.sequela.scores import bootstrap_draws, bootstrap_metrics

# {attack: {defense: {"<instance>[.<score>].<metric>": (standard error, standard error of the change)}}}
Uncertainty = dict[str, dict[str, dict[str, tuple[float, float]]]]


def score_sets(scores: dict[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``{"<instance>[.<score>]": (members, non_members)}`` from a cell's scores file."""
    prefixes = sorted({key.rsplit("/", 1)[0] for key in scores})
    return {prefix: (scores[f"{prefix}/members"], scores[f"{prefix}/non_members"]) for prefix in prefixes}


def seed_uncertainty(params: Params, settings: SequelaSettings, attack: str, defenses: list[str],
                     seed: int) -> dict[str, dict[str, tuple[float, float]]]:
    """One seed's bootstrap standard errors of every membership AUC and TPR of ``defenses``, and of
    their change against ``none``."""
    sets = {d: score_sets(load_tensors(cell_dir(params, attack, d, seed) / SCORES_FILE)) for d in defenses}
    out: dict[str, dict[str, tuple[float, float]]] = {d: {} for d in defenses}
    generator = generator_for(seed, "bootstrap", attack)
    for prefix, (members, non_members) in sets["none"].items():
        resamples = bootstrap_draws(len(members), len(non_members), params.report.bootstrap, generator)
        fprs = settings.attacks[prefix.partition(".")[0]].fprs()  # a membership attack: it kept scores
        before = bootstrap_metrics(members, non_members, resamples, fprs)
        for defense in defenses:
            after = bootstrap_metrics(*sets[defense][prefix], resamples, fprs)
            for metric, values in after.items():
                out[defense][f"{prefix}.{metric}"] = (values.std().item(), (values - before[metric]).std().item())
    return out


def seed_spread_uncertainty(by_seed: SequelaBySeed) -> Uncertainty:
    """The standard error over seeds of every sequela number of every cell with at least two seeds,
    and of its change against ``none`` (paired within each seed)."""
    out: Uncertainty = {}
    for attack, cells in by_seed.items():
        out[attack] = {}
        for defense, values in cells.items():
            mine = [seed for seed in values if seed in cells["none"]]
            if len(mine) < 2:
                continue
            zero = [0.0] * len(mine)
            out[attack][defense] = {
                key: (combined_error([values[s][key] for s in mine], zero),
                      combined_error([values[s][key] - cells["none"][s][key] for s in mine], zero))
                for key in values[mine[0]]}
    return out


def membership_uncertainty(params: Params, settings: SequelaSettings, scope: Scope,
                           by_seed: SequelaBySeed) -> Uncertainty:
    """Standard errors of the mean over seeds of every membership AUC and TPR of the scope's main
    cells, and of their change against ``none``."""
    out: Uncertainty = {}
    defenses = params.grid.main_cells(scope)
    for attack in params.grid.attack_list(scope):
        replicates = [seed for seed in seeds(params, attack, "none")]
        per_seed = {seed: seed_uncertainty(params, settings, attack,
                                           [d for d in defenses if seed in seeds(params, attack, d)], seed)
                    for seed in replicates}
        out[attack] = {}
        for defense in defenses:
            mine = [seed for seed in replicates if seed in seeds(params, attack, defense)]
            keys = per_seed[mine[0]][defense]
            values = {seed: by_seed[attack][defense][seed] for seed in mine}
            before = {seed: by_seed[attack]["none"][seed] for seed in mine}
            out[attack][defense] = {
                key: (combined_error([values[s][key] for s in mine], [per_seed[s][defense][key][0] for s in mine]),
                      combined_error([values[s][key] - before[s][key] for s in mine],
                                     [per_seed[s][defense][key][1] for s in mine]))
                for key in keys}
    return out
