"""The fidelity map's settings and cells: where the papers' claim holds as the defender's data grows.

Both papers report removal within a few CA points with about 2,500 clean CIFAR-10 images; the
default run's defender holds 5% of a smaller training set (a few hundred images). The map runs the
default run's victims (shared, not retrained) against ``fidelity.defenses`` with the defender
holding each share of ``fidelity.defender_fractions`` of the training set, over ``grid.seeds``.
A size equal to ``data.defense_fraction`` reuses the default run's own cells where they exist.
params.yaml's ``fidelity`` section; full/fidelity/dvc.yaml; reports/fidelity/.
"""

from __future__ import annotations

from dataclasses import dataclass

from backdoorlab.config import Params
from backdoorlab.settings import parse_section, require


@dataclass(frozen=True)
class FidelitySettings:
    attacks: list[str]  # victims of the default run (a subset of grid.attacks)
    defenses: list[str]  # defense instances; `none` is the reference, always the default run's cell
    defender_fractions: list[float]  # the defender's share of the training set, validation part included
    # The papers' operating point, drawn on the map: the D3 paper's defender size, and "removed
    # within a few CA points" as CA cost and ASR bounds.
    paper_images: int = 2500
    paper_ca_cost: float = 0.03
    paper_asr: float = 0.05

    def check(self, key: str) -> None:
        require(len(self.defender_fractions) > 0, f"{key}.defender_fractions", "name at least one share")
        for i, fraction in enumerate(self.defender_fractions):
            require(fraction <= 1, f"{key}.defender_fractions[{i}]",
                    f"{fraction:g} is larger than the training set (a share in (0, 1])")
            require(fraction > 0, f"{key}.defender_fractions[{i}]", f"must be in (0, 1], got {fraction:g}")
        repeated = sorted({f for f in self.defender_fractions if self.defender_fractions.count(f) > 1})
        require(not repeated, f"{key}.defender_fractions", f"{repeated[0] if repeated else ''} is listed twice")
        require(self.defenses, f"{key}.defenses", "name at least one defense instance")
        require(self.attacks, f"{key}.attacks", "name at least one attack")


def fidelity_settings(params: Params) -> FidelitySettings:
    """The ``fidelity`` section, checked against the grid: its attacks are the default run's victims
    and its reference is the default run's ``none`` cell."""
    settings = parse_section(FidelitySettings, params.section("fidelity"), "fidelity")
    for i, attack in enumerate(settings.attacks):
        require(attack in params.grid.attacks, f"fidelity.attacks[{i}]",
                f"{attack!r} is not in grid.attacks (the map reuses the default run's victims)")
    require("none" in params.grid.defenses, "grid.defenses", "must list none (the fidelity map's reference)")
    defined = params.section("defenses")
    for i, defense in enumerate(settings.defenses):
        require(defense in defined, f"fidelity.defenses[{i}]",
                f"{defense!r} is not in params.yaml's defenses (defined: {', '.join(defined)})")
        require(defense != "none", f"fidelity.defenses[{i}]", "none is the map's reference, not a cell")
    return settings


@dataclass(frozen=True)
class FidelityCell:
    attack: str
    defense: str
    fraction: float
    in_default_run: bool  # the default run's own cell (same instance, same share)


def fidelity_cells(params: Params, settings: FidelitySettings) -> list[FidelityCell]:
    """Every (attack, defense, share) of the map, in the order of the settings."""
    return [FidelityCell(attack, defense, fraction,
                         defense in params.grid.defenses and fraction == params.clean_fraction(defense))
            for attack in settings.attacks for defense in settings.defenses
            for fraction in settings.defender_fractions]
