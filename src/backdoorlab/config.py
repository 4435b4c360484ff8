"""params.yaml: the sections every stage shares, loaded and checked; the rest read where used.

:func:`load_params` parses what every stage needs (seeds, device, the data settings, the model's
name, the grid, the utility and report settings) and checks it, so a wrong value there stops any
stage with a one-line error naming the key. A method's own section (``attacks.<name>``,
``defenses.<name>``, ``paradigms.<name>``, ``sequela``, ...) is parsed by its family when a stage
builds it: a stage validates, and imports, only what it runs (DVC then re-runs only the cells a
change can affect, and a data set of three classes is never stopped by a block it does not run).
This module imports nothing of the library above :mod:`settings`.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping

import torch
import yaml

from backdoorlab.errors import ConfigError
from backdoorlab.settings import check_non_negative, parse_section, require

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class DataSettings:
    dataset: str = "fashion_mnist"
    options: Mapping[str, Any] | None = None
    # pooled: the data set's train and test parts are pooled and prepare draws its own test split;
    # official: the data set's own test part is the test split (as published numbers are measured)
    # and the shadow and defender data come from its training part only.
    split: Literal["pooled", "official"] = "pooled"
    pool_size: int | None = None  # use a seeded subset of this many images (official: of the training part)
    test_size: int | None = 2000  # official: a seeded subset of the test part; None: all of it
    shadow_size: int = 2000  # the membership-inference attacker's own data, disjoint from the rest
    defense_fraction: float = 0.05
    # Share of the defender's clean data held out from every defense: the defender's own
    # validation set (utility checks, calibration, Fine-Pruning's stopping rule).
    validation_fraction: float = 0.2

    def check(self, key: str) -> None:
        check_non_negative(self, key, "shadow_size")
        if self.test_size is None:
            require(self.split == "official", f"{key}.test_size",
                    "null (the whole official test part) needs data.split: official; pooled needs a number")
        else:
            check_non_negative(self, key, "test_size")
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
    # Confidence level of every interval over seeds (a Student t-interval of the mean).
    confidence: float = 0.95
    # A cell's backdoor is "removed" when the upper end of its ASR interval is at most this, "not
    # removed" when the lower end is above it, "inconclusive" otherwise (reporting/verdicts.py).
    asr_removed: float = 0.10

    def check(self, key: str) -> None:
        require(self.bootstrap >= 2, f"{key}.bootstrap", f"must be >= 2, got {self.bootstrap}")
        require(0 < self.confidence < 1, f"{key}.confidence", f"must be in (0, 1), got {self.confidence}")
        require(0 < self.asr_removed < 1, f"{key}.asr_removed", f"must be in (0, 1), got {self.asr_removed}")


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
    # Replicates: every victim and cell of the default run, and the full matrix's lead columns, is
    # run once per seed (poisoned subset, initialisation, batch order, the defense's randomness);
    # every other cell runs at the first seed only, and the tables say so.
    seeds: list[int] = field(default_factory=lambda: [0])
    # The full matrix only (full/dvc.yaml): more cells, each in the tables and probed by the sequela.
    more_defenses: list[str] = field(default_factory=list)
    more_attacks: list[str] = field(default_factory=list)  # run against defenses + more_defenses
    # The full matrix's tables and figures show these instances first, in this order (the D3
    # paper's columns), then the others in grid order; they run over every seed.
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

    def check(self, key: str) -> None:
        require(len(self.seeds) > 0, f"{key}.seeds", "name at least one seed")
        for i, seed in enumerate(self.seeds):
            require(seed >= 0, f"{key}.seeds[{i}]", f"must be a non-negative integer, got {seed}")
        repeated = sorted({s for s in self.seeds if self.seeds.count(s) > 1})
        require(not repeated, f"{key}.seeds", f"seed {repeated[0] if repeated else ''} is listed twice")

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

    def seeds_of(self, attack: str, defense: str | None = None) -> list[int]:
        """The seeds a victim (``defense`` None) or a cell runs at: every seed for the standalone
        attacks' victims, their cells with the default run's defenses and the full matrix's lead
        columns; the first seed for every other cell and for the paradigms' and regimes' victims."""
        replicated = attack in self.attacks + self.more_attacks and (
            defense is None or defense in self.defenses or defense in self.lead_columns)
        return list(self.seeds) if replicated else self.seeds[:1]


@dataclass(frozen=True)
class Params:
    """params.yaml's shared sections, parsed; ``raw`` keeps every section as written."""

    raw: Mapping[str, Any]
    seed: int  # the data split's seed (prepare, the attacker's shadow models); replicates: grid.seeds
    device: Literal["cpu", "cuda", "auto"]
    deterministic: bool  # on a GPU: deterministic kernels (slower), else cuDNN's autotuner
    data: DataSettings
    model_arch: str
    model_params: Mapping[str, Any]
    grid: GridSettings
    utility: UtilitySettings
    report: ReportSettings

    def section(self, key: str) -> Mapping[str, Any]:
        """A top-level section as written (``{}`` when absent); one line naming it if not a mapping."""
        value = self.raw.get(key) or {}
        require(isinstance(value, Mapping), key, "expected a mapping")
        return value

    def instance(self, family: str, name: str) -> Mapping[str, Any]:
        """The named instance ``<family>.<name>`` (e.g. ``defenses.sft``), a mapping with a ``method``."""
        section = self.section(family).get(name)
        require(section is not None, f"{family}.{name}", f"not defined (defined: {', '.join(self.section(family))})")
        require(isinstance(section, Mapping) and "method" in section, f"{family}.{name}.method",
                "missing required parameter")
        return section

    def method(self, family: str, name: str) -> str:
        """The registry name an instance runs (``defenses.d3_cal`` -> ``d3``)."""
        return self.instance(family, name)["method"]

    def clean_fraction(self, defense: str) -> float:
        """The share of the training set a defense instance holds (a training-time defense holds
        all of it; its sequela cells still take the re-injection attacker's usual subset)."""
        if defense in self.section("cleansers"):
            return self.data.defense_fraction
        fraction = self.instance("defenses", defense).get("clean_fraction")
        if fraction is None:
            return self.data.defense_fraction
        require(isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 < fraction <= 1,
                f"defenses.{defense}.clean_fraction", f"must be in (0, 1], got {fraction!r}")
        return float(fraction)

    def torch_device(self) -> torch.device:
        """The device ``device`` names (``auto``: CUDA when present), with the GPU's kernels set
        up as ``deterministic`` asks. Stages call it before any computation."""
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: 'cuda' asked for but no GPU is available (use cpu or auto)")
        if self.device == "cpu" or not torch.cuda.is_available():
            return torch.device("cpu")  # CPU kernels are deterministic already
        configure_cuda(self.deterministic)
        return torch.device("cuda")


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


def check_default_grid(params: Params) -> None:
    """The default run's lists name defined instances, ``none`` among the main ones."""
    grid, defenses = params.grid, params.section("defenses")
    check_grid_names(grid, "attack", params.section("attacks"), ("attacks",), "an attack")
    check_grid_names(grid, "defense", defenses, ("defenses",), "a cell")
    check_grid_names(grid, "defense", defenses, ("main",), "a cell")
    for i, name in enumerate(grid.main):
        require(name in grid.defenses, f"grid.main[{i}]", f"{name!r} is not in grid.defenses")
    require("none" in grid.main and params.method("defenses", "none") == "none", "grid.main",
            "must include 'none' (method none): every other cell is compared to it")


def check_full_grid(params: Params) -> None:
    """The full matrix's lists (checked when its blocks are composed or reported)."""
    grid = params.grid
    check_grid_names(grid, "attack", params.section("attacks"), ("attacks", "more_attacks"), "an attack")
    check_grid_names(grid, "defense", params.section("defenses"), ("defenses", "more_defenses"), "a cell")
    for i, name in enumerate(grid.lead_columns):
        require(name in grid.main + grid.more_defenses, f"grid.lead_columns[{i}]",
                f"{name!r} is in neither grid.main nor grid.more_defenses")
    cleansers = params.section("cleansers")
    for name in cleansers:
        require(name not in params.section("defenses"), f"cleansers.{name}",
                "is also a defense's name (both name cells <attack>-<name>)")
    check_grid_names(grid, "training-time defense", cleansers, ("cleansers",), "a training-time defense")
    every_attack = grid.attacks + grid.more_attacks
    require(not grid.cleansers or sorted(grid.cleansing_attacks) == sorted(every_attack), "grid.cleansing_attacks",
            f"must list every attack of grid.attacks and grid.more_attacks ({', '.join(every_attack)}): the full "
            "report has a cell for each attack and training-time defense")


def check_prefixed_victims(params: Params, family: str, kind: str) -> None:
    """Victims ``<name>-<attack>`` of a paradigm or regime must not read as an attack's name."""
    for name in params.section(family):
        require("-" not in name, f"{family}.{name}", f"a {kind} name may not contain '-' (victims are <{kind}>-<attack>)")
        for attack in params.section("attacks"):
            require(attack != name and not attack.startswith(f"{name}-"), f"{family}.{name}",
                    f"clashes with attack {attack!r} (victims are named <{kind}>-<attack>)")


def check_paradigm_grid(params: Params) -> None:
    """The paradigms' lists (checked when their block is composed or run)."""
    check_prefixed_victims(params, "paradigms", "paradigm")
    check_grid_names(params.grid, "paradigm", params.section("paradigms"), ("paradigms",), "a paradigm")
    check_grid_names(params.grid, "attack", params.section("attacks"), ("paradigm_attacks",), "an attack")


def check_regime_grid(params: Params) -> None:
    """The regimes' lists (checked when their block is composed or run), ``none`` among the defenses."""
    check_prefixed_victims(params, "regimes", "regime")
    for name in params.section("regimes"):
        require(name not in params.section("paradigms"), f"regimes.{name}",
                "is also a paradigm's name (both name victims <name>-<attack>)")
    grid = params.grid
    check_grid_names(grid, "training regime", params.section("regimes"), ("regimes",), "a regime")
    check_grid_names(grid, "attack", params.section("attacks"), ("regime_attacks",), "an attack")
    check_grid_names(grid, "defense", params.section("defenses"), ("regime_defenses",), "a defense")
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
    model = _section(raw, "model")
    require(isinstance(model.get("arch"), str), "model.arch", "missing required parameter (a model's name)")
    params = Params(raw=raw, seed=seed, device=device, deterministic=deterministic,
                    data=parse_section(DataSettings, _section(raw, "data"), "data"),
                    model_arch=model["arch"], model_params=model,
                    grid=parse_section(GridSettings, _section(raw, "grid"), "grid"),
                    utility=parse_section(UtilitySettings, raw.get("utility"), "utility"),
                    report=parse_section(ReportSettings, raw.get("report"), "report"))
    check_default_grid(params)
    return params


def read_params(path: str | Path = PARAMS_FILE) -> Mapping[str, Any]:
    """params.yaml as written, with one-line errors for a missing file or bad YAML."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: file not found (run from the repository root)")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    return parse_params(read_params(path))
