"""Check every section a set of blocks reads, before any stage runs: one line naming the first bad key.

A stage validates what it builds (so a data set of three classes is never stopped by the paradigm
block it does not run); this module validates, in seconds, everything the chosen blocks would
build, so that ``make repro`` stops on a typo before the first stage instead of after minutes:

    python -m backdoorlab.pipeline.checks                        # the default run
    python -m backdoorlab.pipeline.checks default full paradigms regimes   # the whole DAG

No stage imports it (it loads every module the blocks name).
"""

from __future__ import annotations

import sys
from typing import Iterable, Literal

from backdoorlab.attacks.base import build_attack
from backdoorlab.cleansing.base import build_cleanser
from backdoorlab.config import Params, check_full_grid, check_paradigm_grid, check_regime_grid, load_params
from backdoorlab.defenses.spec import build_defense
from backdoorlab.errors import ConfigError
from backdoorlab.fidelity import fidelity_settings
from backdoorlab.models.base import ModelSpec, build_model
from backdoorlab.paradigms.base import check_task_attack
from backdoorlab.pipeline.victims import paradigm, regime_recipe, regime_settings
from backdoorlab.registry import DATASETS
from backdoorlab.reporting.landscape import LandscapeSettings
from backdoorlab.sequela.base import parse_sequela
from backdoorlab.settings import parse_section, require

Block = Literal["default", "full", "paradigms", "regimes", "fidelity"]
BLOCKS: tuple[Block, ...] = ("default", "full", "paradigms", "regimes", "fidelity")


def data_shape(params: Params) -> tuple[tuple[int, int, int], int]:
    """The data set's image shape and class count, from its params alone (no file is read)."""
    cls = DATASETS.get(params.data.dataset, "data.dataset")
    dataset = cls(parse_section(cls.Config, params.data.options, "data.options"))
    return dataset.image_shape, dataset.num_classes


def check_attacks(params: Params, names: Iterable[str], shape: tuple[int, int, int], classes: int) -> None:
    for name in dict.fromkeys(names):
        build_attack(name, params.instance("attacks", name), shape, classes)


def check_defenses(params: Params, names: Iterable[str]) -> None:
    for name in dict.fromkeys(names):
        build_defense(name, params.instance("defenses", name))
        params.clean_fraction(name)


def check_paradigms(params: Params, shape: tuple[int, int, int], classes: int) -> None:
    check_paradigm_grid(params)
    for name in params.grid.paradigms:
        method = paradigm(params, name)
        task = method.downstream_classes(classes)  # resolves the whole task against the data set
        for i, attack in enumerate(params.grid.paradigm_attacks):
            built = build_attack(attack, params.instance("attacks", attack), shape, len(task))
            check_task_attack(built, f"grid.paradigm_attacks[{i}]")
            method.check_attack(built, f"grid.paradigm_attacks[{i}] ({attack} in paradigm {name})")


def check_params(params: Params, blocks: Iterable[Block] = ("default",)) -> None:
    """Build every section ``blocks`` read; raises ConfigError naming the first bad key."""
    blocks = set(blocks)
    shape, classes = data_shape(params)
    build_model(ModelSpec(params.model_arch, params.model_params, shape[0], shape[1], classes,
                          (0.5,) * shape[0], (0.5,) * shape[0]))
    regime_recipe(params, None)
    grid = params.grid
    check_attacks(params, grid.attacks, shape, classes)
    check_defenses(params, grid.defenses)
    parse_sequela(params.section("sequela"))
    landscape = parse_section(LandscapeSettings, params.section("landscape"), "landscape")
    for i, name in enumerate(landscape.defenses):
        require(name in grid.defenses, f"landscape.defenses[{i}]", f"{name!r} is not in grid.defenses")
    if "full" in blocks:
        check_full_grid(params)
        check_attacks(params, grid.more_attacks, shape, classes)
        check_defenses(params, grid.more_defenses)
        for name in grid.cleansers:
            build_cleanser(name, params.instance("cleansers", name))
    if "paradigms" in blocks:
        check_paradigms(params, shape, classes)
    if "regimes" in blocks:
        check_regime_grid(params)
        check_attacks(params, grid.regime_attacks, shape, classes)
        check_defenses(params, grid.regime_defenses)
        for name in grid.regimes:
            regime_settings(params, name)
    if "fidelity" in blocks:
        check_defenses(params, fidelity_settings(params).defenses)


def main() -> None:
    blocks = sys.argv[1:] or ["default"]
    try:
        for block in blocks:
            require(block in BLOCKS, "blocks", f"unknown block {block!r} (known: {', '.join(BLOCKS)})")
        check_params(load_params(), blocks)  # type: ignore[arg-type]
    except ConfigError as error:
        sys.exit(f"error: {error}")
    print(f"params.yaml: every section of {', '.join(blocks)} is valid")


if __name__ == "__main__":
    main()
