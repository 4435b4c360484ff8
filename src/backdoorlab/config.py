"""params.yaml, loaded and validated as a whole before any stage does any work.

Every stage calls :func:`load_params`; a wrong value anywhere stops every stage with a one-line
error naming the key, before a file is read or written. Sections are parsed into the dataclasses
their modules declare, so the checks live next to the knobs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
import yaml

from backdoorlab.attacks import Attack, build_attack
from backdoorlab.cleansing import Cleanser, build_cleanser
from backdoorlab.data import DATASETS, Dataset
from backdoorlab.defenses import DefenseSpec, build_defense
from backdoorlab.errors import ConfigError
from backdoorlab.launch_config import LaunchSettings, parse_launch
from backdoorlab.models import MODELS
from backdoorlab.paradigms import Paradigm, build_paradigm
from backdoorlab.paradigms.base import check_task_attack
from backdoorlab.reporting.landscape import LandscapeSettings
from backdoorlab.sequela import SequelaSettings, parse_sequela
from backdoorlab.settings import check_non_negative, parse_section, require
from backdoorlab.training.loop import OptimConfig

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "fashion_mnist"
    options: Mapping[str, Any] | None = None
    pool_size: int | None = None  # use a seeded subset of this many images (tiny profiles)
    test_size: int = 2000
    shadow_size: int = 2000  # the membership-inference attacker's own data, disjoint from the rest
    defense_fraction: float = 0.05
    # Share of the defender's clean data held out from every defense: the defender's own
    # validation set (utility checks, calibration, Fine-Pruning's stopping rule).
    validation_fraction: float = 0.2

    def check(self, key: str) -> None:
        check_non_negative(self, key, "test_size", "shadow_size")
        if self.pool_size is not None:
            require(self.pool_size > 0, f"{key}.pool_size", f"must be > 0, got {self.pool_size}")
        require(0 < self.defense_fraction <= 1, f"{key}.defense_fraction",
                f"must be in (0, 1], got {self.defense_fraction}")
        require(0 < self.validation_fraction < 1, f"{key}.validation_fraction",
                f"must be in (0, 1), got {self.validation_fraction}")


@dataclass(frozen=True)
class UtilitySettings:
    """How a cell's cost in clean accuracy is judged, from the defender's validation data only."""

    # A cell is flagged "collapsed" when its validation accuracy keeps less than this share of the
    # undefended model's accuracy above chance: (acc_after - chance) / (acc_before - chance).
    collapse_floor: float = 0.5

    def check(self, key: str) -> None:
        require(0 <= self.collapse_floor <= 1, f"{key}.collapse_floor",
                f"must be in [0, 1], got {self.collapse_floor}")


@dataclass(frozen=True)
class ReportSettings:
    # Bootstrap resamples of the membership attacks' evaluation scores, for the standard errors of
    # their AUC and TPR and of each defense's change (paired: the same resamples for both models).
    bootstrap: int = 500

    def check(self, key: str) -> None:
        require(self.bootstrap >= 2, f"{key}.bootstrap", f"must be >= 2, got {self.bootstrap}")


@dataclass(frozen=True)
class RegimeSettings:
    """A training regime: victims ``<regime>-<attack>`` trained on ``train_size`` images of the
    training split with ``train`` (the ``train`` section with the regime's overrides applied), as
    are the regime's clean model and shadow models. The defender and the test set are unchanged."""

    train_size: int
    train: OptimConfig


def merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``overrides`` applied, nested mappings merged key by key."""
    out = dict(base)
    for key, value in overrides.items():
        out[key] = merged(base[key], value) if isinstance(value, Mapping) and isinstance(base.get(key), Mapping) else value
    return out


def parse_regimes(raw: Mapping[str, Any] | None, train: Mapping[str, Any]) -> dict[str, RegimeSettings]:
    regimes = {}
    for name, section in (raw or {}).items():
        key = f"regimes.{name}"
        require(isinstance(section, Mapping), key, "expected a mapping")
        unknown = sorted(set(section) - {"train_size", "train"})
        require(not unknown, f"{key}.{unknown[0] if unknown else ''}", "unknown parameter (known: train_size, train)")
        size = section.get("train_size")
        require(isinstance(size, int) and not isinstance(size, bool) and size > 0, f"{key}.train_size",
                f"must be a positive integer, got {size!r}")
        overrides = section.get("train") or {}
        require(isinstance(overrides, Mapping), f"{key}.train", "expected a mapping (overrides of train)")
        regimes[name] = RegimeSettings(size, parse_section(OptimConfig, merged(train, overrides), f"{key}.train"))
    return regimes


# What a report covers: the default run; every attack against the default run's defenses (the
# full matrix's attacks block); every cell of the full matrix; the transfer and encoder
# paradigms' victims against the main defenses; or the training regimes' victims against them.
Scope = Literal["default", "attacks", "full", "paradigms", "regimes"]
SCOPES: tuple[Scope, ...] = ("default", "attacks", "full", "paradigms", "regimes")


@dataclass(frozen=True)
class GridSettings:
    attacks: list[str]
    defenses: list[str]  # the default run: every defense instance run against every attack
    main: list[str]  # the subset in the main table and probed by the sequela attacks
    # The full matrix only (full/dvc.yaml): more cells, each in the tables and probed by the sequela.
    more_defenses: list[str] = field(default_factory=list)
    more_attacks: list[str] = field(default_factory=list)  # run against defenses + more_defenses
    # The full matrix's tables and figures show these instances first, in this order (the D3
    # paper's columns), then the others in grid order.
    lead_columns: list[str] = field(default_factory=list)
    # The transfer and encoder paradigms (full/paradigms/dvc.yaml): each of these attacks planted
    # through each paradigm, a victim named <paradigm>-<attack>, against the main defenses.
    paradigms: list[str] = field(default_factory=list)
    paradigm_attacks: list[str] = field(default_factory=list)
    # The training-time defenses (full/cleansing/dvc.yaml): each against every attack, in the full
    # matrix's report beside the post-training defenses.
    cleansers: list[str] = field(default_factory=list)
    # Every attack of attacks + more_attacks, spelt out: a DVC matrix takes one list.
    cleansing_attacks: list[str] = field(default_factory=list)
    # The training regimes (full/regimes/dvc.yaml): each of these attacks planted under each regime,
    # a victim named <regime>-<attack>, against these defenses (each probed by the sequela attacks).
    regimes: list[str] = field(default_factory=list)
    regime_attacks: list[str] = field(default_factory=list)
    regime_defenses: list[str] = field(default_factory=list)

    def victims(self) -> list[str]:
        """The paradigms' victims, ``<paradigm>-<attack>``."""
        return [f"{paradigm}-{attack}" for paradigm in self.paradigms for attack in self.paradigm_attacks]

    def regime_victims(self) -> list[str]:
        """The regimes' victims, ``<regime>-<attack>``."""
        return [f"{regime}-{attack}" for regime in self.regimes for attack in self.regime_attacks]

    def attack_list(self, scope: Scope) -> list[str]:
        """The attacks (victims) of a report's scope: the default run's, with the full matrix's
        too, or the paradigms' or regimes' victims."""
        if scope == "paradigms":
            return self.victims()
        if scope == "regimes":
            return self.regime_victims()
        return list(self.attacks) if scope == "default" else self.attacks + self.more_attacks

    def cells(self, scope: Scope) -> list[str]:
        """The defense instances of a report's scope (more_defenses only in the full matrix; the
        paradigms' and regimes' victims meet the main ones)."""
        if scope == "regimes":
            return list(self.regime_defenses)
        if scope == "paradigms":
            return list(self.main)
        return self.defenses + self.more_defenses + self.cleansers if scope == "full" else list(self.defenses)

    def main_cells(self, scope: Scope) -> list[str]:
        """Those in the main table and probed by the sequela attacks."""
        if scope == "regimes":
            return list(self.regime_defenses)
        if scope != "full":
            return list(self.main)
        cells = self.main + self.more_defenses + self.cleansers
        return [c for c in self.lead_columns if c in cells] + [c for c in cells if c not in self.lead_columns]


@dataclass(frozen=True)
class Params:
    raw: Mapping[str, Any]
    seed: int
    device: Literal["cpu", "cuda", "auto"]
    deterministic: bool  # on a GPU: deterministic kernels (slower), else cuDNN's autotuner
    data: DataSettings
    dataset: Dataset
    model_arch: str
    model_params: Mapping[str, Any]
    train: OptimConfig
    attacks: dict[str, Attack]
    defenses: dict[str, DefenseSpec]
    paradigms: dict[str, Paradigm]
    regimes: dict[str, RegimeSettings]
    cleansers: dict[str, Cleanser]
    grid: GridSettings
    utility: UtilitySettings
    sequela: SequelaSettings
    landscape: LandscapeSettings
    report: ReportSettings
    launch: LaunchSettings  # read only by the Ray launcher, never a stage param

    def torch_device(self) -> torch.device:
        """The device ``device`` names (``auto``: CUDA when present), with the GPU's kernels set
        up as ``deterministic`` asks. Stages call it before any computation."""
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' asked for but no GPU is available (use cpu or auto)")
        if self.device == "cpu" or not torch.cuda.is_available():
            return torch.device("cpu")  # CPU kernels are deterministic already
        configure_cuda(self.deterministic)
        return torch.device("cuda")

    def paradigm_attack(self, paradigm: str, attack: str) -> Attack:
        """``attacks.<attack>`` built for the downstream task of ``paradigms.<paradigm>``."""
        classes = self.paradigms[paradigm].downstream_classes(self.dataset.num_classes)
        return build_attack(attack, self.raw["attacks"][attack], self.dataset.image_shape, len(classes))

    def clean_fraction(self, defense: str) -> float:
        """The share of the training set a defense instance holds (a training-time defense holds
        all of it; its sequela cells still take the re-injection attacker's usual subset)."""
        if defense in self.cleansers:
            return self.data.defense_fraction
        fraction = self.defenses[defense].clean_fraction
        return self.data.defense_fraction if fraction is None else fraction


def configure_cuda(deterministic: bool) -> None:
    """Deterministic GPU kernels, or the fastest ones. Deterministic cuBLAS needs its workspace
    setting before its first call; an op with no deterministic CUDA kernel warns (naming the op)
    rather than stopping a long run."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = not deterministic


def derive_seed(seed: int, *parts: str) -> int:
    """A stable per-purpose seed, so e.g. the badnets and blended runs draw independent streams."""
    digest = hashlib.sha256("/".join((str(seed),) + parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def generator_for(seed: int, *parts: str) -> torch.Generator:
    return torch.Generator().manual_seed(derive_seed(seed, *parts))


def _section(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key)
    require(isinstance(value, Mapping), key, "missing section (a mapping is required)")
    return value  # type: ignore[return-value]


def check_grid_names(grid: GridSettings, kind: str, defined: Mapping[str, Any], fields: tuple[str, ...],
                     subject: str) -> None:
    """Every name in the grid lists ``fields`` is a defined ``kind``, and the full matrix's list
    (the last field) shares none with the default run's (the first): ``subject`` runs in one grid."""
    for field_name in fields:
        for i, name in enumerate(getattr(grid, field_name)):
            require(name in defined, f"grid.{field_name}[{i}]",
                    f"unknown {kind} {name!r} (defined: {', '.join(defined)})")
    default, more = fields[0], fields[-1]
    for i, name in enumerate(getattr(grid, more) if more != default else []):
        require(name not in getattr(grid, default), f"grid.{more}[{i}]",
                f"{name!r} is already in grid.{default} ({subject} runs in one of the two grids)")


def check_paradigm_grid(grid: GridSettings, paradigms: Mapping[str, Paradigm], raw_attacks: Mapping[str, Any],
                        dataset: Dataset) -> None:
    """Every paradigm and attack of the paradigms' grid is defined and the attack works in the
    paradigm; no victim id ``<paradigm>-<attack>`` can be read as an attack's name."""
    for name in paradigms:
        for attack in raw_attacks:
            require(attack != name and not attack.startswith(f"{name}-"), f"paradigms.{name}",
                    f"clashes with attack {attack!r} (victims are named <paradigm>-<attack>)")
    for i, name in enumerate(grid.paradigms):
        require(name in paradigms, f"grid.paradigms[{i}]", f"unknown paradigm {name!r} (defined: {', '.join(paradigms)})")
        classes = paradigms[name].downstream_classes(dataset.num_classes)
        require(max(classes) < dataset.num_classes, f"paradigms.{name}.task",
                f"class {max(classes)} is not in the {dataset.num_classes}-class data set")
    for i, name in enumerate(grid.paradigm_attacks):
        require(name in raw_attacks, f"grid.paradigm_attacks[{i}]",
                f"unknown attack {name!r} (defined: {', '.join(raw_attacks)})")
        for paradigm in grid.paradigms:
            classes = paradigms[paradigm].downstream_classes(dataset.num_classes)
            attack = build_attack(name, raw_attacks[name], dataset.image_shape, len(classes))
            check_task_attack(attack, f"grid.paradigm_attacks[{i}]")
            paradigms[paradigm].check_attack(attack, f"grid.paradigm_attacks[{i}] ({name} in paradigm {paradigm})")


def check_regime_grid(grid: GridSettings, regimes: Mapping[str, RegimeSettings], attacks: Mapping[str, Attack],
                      defenses: Mapping[str, DefenseSpec], paradigms: Mapping[str, Paradigm]) -> None:
    """Every regime, attack and defense of the regimes' grid is defined, ``none`` among the defenses;
    no victim id ``<regime>-<attack>`` can be read as an attack's or a paradigm victim's name."""
    for name in regimes:
        require(name not in paradigms, f"regimes.{name}", "is also a paradigm's name (both name victims <name>-<attack>)")
        for attack in attacks:
            require(attack != name and not attack.startswith(f"{name}-"), f"regimes.{name}",
                    f"clashes with attack {attack!r} (victims are named <regime>-<attack>)")
    check_grid_names(grid, "training regime", regimes, ("regimes",), "a regime")
    check_grid_names(grid, "attack", attacks, ("regime_attacks",), "an attack")
    check_grid_names(grid, "defense", defenses, ("regime_defenses",), "a defense")
    require(not grid.regimes or "none" in grid.regime_defenses, "grid.regime_defenses",
            "must include 'none' (method none): every other cell is compared to it")


def parse_params(raw: Mapping[str, Any]) -> Params:
    require(isinstance(raw, Mapping), PARAMS_FILE, "must be a YAML mapping")
    seed = raw.get("seed", 0)
    require(isinstance(seed, int) and not isinstance(seed, bool), "seed", f"expected an integer, got {seed!r}")
    device = raw.get("device", "cpu")
    require(device in ("cpu", "cuda", "auto"), "device", f"must be cpu, cuda or auto, got {device!r}")
    deterministic = raw.get("deterministic", True)
    require(isinstance(deterministic, bool), "deterministic", f"must be true or false, got {deterministic!r}")

    data = parse_section(DataSettings, _section(raw, "data"), "data")
    dataset_cls = DATASETS.get(data.dataset, "data.dataset")
    dataset = dataset_cls(parse_section(dataset_cls.Config, data.options, "data.options"))

    model_raw = _section(raw, "model")
    require("arch" in model_raw, "model.arch", "missing required parameter")
    model_cls = MODELS.get(model_raw["arch"], "model.arch")
    parse_section(model_cls.Config, model_raw, "model", ignore=("arch",))  # type: ignore[attr-defined]

    train = parse_section(OptimConfig, _section(raw, "train"), "train")
    attacks = {name: build_attack(name, section, dataset.image_shape, dataset.num_classes)
               for name, section in _section(raw, "attacks").items()}
    defenses = {name: build_defense(name, section) for name, section in _section(raw, "defenses").items()}

    grid = parse_section(GridSettings, _section(raw, "grid"), "grid")
    check_grid_names(grid, "attack", attacks, ("attacks", "more_attacks"), "an attack")
    check_grid_names(grid, "defense", defenses, ("defenses", "main", "more_defenses"), "a cell")
    for i, name in enumerate(grid.main):
        require(name in grid.defenses, f"grid.main[{i}]", f"{name!r} is not in grid.defenses")
    for i, name in enumerate(grid.lead_columns):
        require(name in grid.main + grid.more_defenses, f"grid.lead_columns[{i}]",
                f"{name!r} is in neither grid.main nor grid.more_defenses")
    require("none" in grid.main and defenses["none"].method == "none", "grid.main",
            "must include 'none' (method none): every other cell is compared to it")

    cleansers = {name: build_cleanser(name, section) for name, section in (raw.get("cleansers") or {}).items()}
    for name in cleansers:
        require(name not in defenses, f"cleansers.{name}", "is also a defense's name (both name cells <attack>-<name>)")
    for i, name in enumerate(grid.cleansers):
        require(name in cleansers, f"grid.cleansers[{i}]",
                f"unknown training-time defense {name!r} (defined: {', '.join(cleansers) or 'none'})")
    every_attack = grid.attacks + grid.more_attacks
    require(not grid.cleansers or sorted(grid.cleansing_attacks) == sorted(every_attack), "grid.cleansing_attacks",
            f"must list every attack of grid.attacks and grid.more_attacks ({', '.join(every_attack)}): the full "
            "report has a cell for each attack and training-time defense")
    paradigms = {name: build_paradigm(name, section) for name, section in (raw.get("paradigms") or {}).items()}
    check_paradigm_grid(grid, paradigms, _section(raw, "attacks"), dataset)
    regimes = parse_regimes(raw.get("regimes"), _section(raw, "train"))
    check_regime_grid(grid, regimes, attacks, defenses, paradigms)

    landscape = parse_section(LandscapeSettings, raw.get("landscape"), "landscape")
    for i, name in enumerate(landscape.defenses):
        require(name in grid.defenses, f"landscape.defenses[{i}]", f"{name!r} is not in grid.defenses")

    return Params(raw=raw, seed=seed, device=device, deterministic=deterministic, data=data, dataset=dataset,
                  model_arch=model_raw["arch"], model_params=model_raw, train=train,
                  attacks=attacks, defenses=defenses, paradigms=paradigms, regimes=regimes, cleansers=cleansers, grid=grid,
                  utility=parse_section(UtilitySettings, raw.get("utility"), "utility"),
                  sequela=parse_sequela(_section(raw, "sequela"), dataset.num_classes),
                  landscape=landscape, report=parse_section(ReportSettings, raw.get("report"), "report"),
                  launch=parse_launch(raw.get("launch")))


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (run from the repository root)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_params(raw)
