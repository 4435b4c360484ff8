"""Each DVC stage of the pipeline, its cells, and the exact code each cell runs.

A :class:`Stage` is one entry of a ``dvc.yaml``: a plain stage, or a ``foreach`` over its cells (DVC
names them ``<stage>@<key>``, e.g. ``defend@badnets-nc-s0``). Its code dependencies are

- the stage script and its import closure (:mod:`backdoorlab.graph.imports`), shared by every cell;
- the model's module, ``src/backdoorlab/models/${model.arch}.py``, templated so that
  ``dvc exp run -S model=<arch>`` follows (every model module imports only ``models/base.py``'s
  closure, which :func:`model_code` checks);
- per cell, the modules its registry names run (its attack's, its defense's, its paradigm's) with
  their closures: a cell's ``item.code`` list. DVC cannot splice a list into ``deps``, so the
  template lists ``${item.code[0]}`` ... ``${item.code[k]}`` and a cell with fewer files repeats its
  last one (DVC records a repeated dependency twice, harmlessly).

Every path comes from :mod:`backdoorlab.layout`, the module the stages write through, so the two
cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from backdoorlab import layout
from backdoorlab.config import Params
from backdoorlab.graph.imports import SRC, closure, plugin_closure, source_of
from backdoorlab.registry import ATTACKS, CLEANSERS, DEFENSES, MODELS, PARADIGMS, SEQUELA, module_file

MODEL_TEMPLATE = "src/backdoorlab/models/${model.arch}.py"
SHARED = ["device", "deterministic", "model"]  # what every stage that builds a model reads


def relative(path: Path) -> str:
    """A library file as the repository names it (``src/backdoorlab/...``)."""
    return f"src/{path.relative_to(SRC).as_posix()}"


@dataclass
class Stage:
    """One stage of a ``dvc.yaml``; with ``cells``, a ``foreach`` whose items fill the ``${item.*}``
    placeholders of the other fields."""

    script: str  # stages/<name>.py
    cmd: str
    deps: list[str]  # data: what earlier stages wrote
    params: list[str]
    outs: list[str] = field(default_factory=list)
    metrics: list[str] = field(default_factory=list)  # committed (cache: false)
    plots: list[str] = field(default_factory=list)  # committed (cache: false)
    code: list[str] = field(default_factory=list)  # shared code beyond the script's closure
    cells: dict[str, dict[str, Any]] | None = None  # key -> item; item["code"]: the cell's own files

    def render(self, root: Path, wdir: str | None) -> dict[str, Any]:
        folders = tuple(f"{dep}/" for dep in self.deps if (root / dep).is_dir())  # declared whole: files inside are in
        shared = [self.script, *sorted(f for f in {relative(p) for p in closure(root / self.script)} | set(self.code)
                                       if not f.startswith(folders))]
        body: dict[str, Any] = {"wdir": wdir} if wdir else {}
        body["cmd"] = self.cmd
        slots = 0
        if self.cells is not None:
            for item in self.cells.values():
                item["code"] = [f for f in item.get("code", []) if f not in shared]
            slots = max((len(item["code"]) for item in self.cells.values()), default=0)
            for item in self.cells.values():
                item["code"] = (item["code"] + [item["code"][-1] if item["code"] else self.script] * slots)[:slots]
                if not slots:
                    del item["code"]
        body["deps"] = [*shared, *(f"${{item.code[{i}]}}" for i in range(slots)), *self.deps]
        body["params"] = list(self.params)
        for key in ("outs", "metrics", "plots"):
            values = getattr(self, key)
            if values:
                body[key] = list(values) if key == "outs" else [{value: {"cache": False}} for value in values]
        return body if self.cells is None else {"foreach": self.cells, "do": body}


def model_code() -> list[str]:
    """The model's module, templated on ``model.arch``, after checking that no model module imports
    more than ``models/base.py`` does (else the template would miss a file)."""
    base = {source_of("backdoorlab.models.base"), source_of("backdoorlab.models")} | closure(
        module_file("backdoorlab.models.base"))
    for arch in MODELS.names():
        path = module_file(MODELS.module(arch, "model.arch"))
        extra = plugin_closure(MODELS, arch, "model.arch") - base - {path}
        if path.stem != arch or extra:
            raise SystemExit(f"{relative(path)}: a model module must be named after its arch ({arch}) and import "
                             f"only what models/base.py imports (it also imports {sorted(map(relative, extra))})")
    return [MODEL_TEMPLATE]


def cell_code(params: Params, attack: str | None = None, defense: str | None = None, cleanser: str | None = None,
              paradigm: str | None = None) -> list[str]:
    """The library files a cell's registry names run: its attack's, defense's, training-time
    defense's and paradigm's modules, with their imports."""
    files: set[Path] = set()
    for registry, family, name in ((ATTACKS, "attacks", attack), (DEFENSES, "defenses", defense),
                                   (CLEANSERS, "cleansers", cleanser), (PARADIGMS, "paradigms", paradigm)):
        if name is not None:
            files |= plugin_closure(registry, params.method(family, name), f"{family}.{name}.method")
    return sorted(relative(p) for p in files)


def sequela_code(params: Params, methods: set[str] | None = None) -> list[str]:
    """Every sequela instance's module (of ``methods`` only, if given): all run in every sequela cell."""
    files: set[Path] = set()
    for name, entry in params.section("sequela").get("attacks", {}).items():
        if methods is None or entry["method"] in methods:
            files |= plugin_closure(SEQUELA, entry["method"], f"sequela.attacks.{name}.method")
    return sorted(relative(p) for p in files)


@dataclass(frozen=True)
class Victim:
    """A victim at one seed: ``name`` is what the stages take (``badnets``, ``transfer_data-badnets``),
    ``attack`` the instance under ``attacks``, ``prefix`` its paradigm or regime."""

    name: str
    attack: str
    seed: int
    prefix: str | None = None

    @property
    def key(self) -> str:
        return f"{self.name}-{layout.seed_dir(self.seed)}"

    def item(self, params: Params, **fields: Any) -> dict[str, Any]:
        paradigm = layout.paradigm_of(params, self.name)
        return {"victim": self.name, "attack": self.attack, "seed": self.seed,
                **({"prefix": self.prefix} if self.prefix else {}),
                "code": cell_code(params, attack=self.attack, paradigm=paradigm), **fields}


def victims(params: Params, attacks: list[str], prefix: str | None = None, lead_only: bool = False) -> list[Victim]:
    """The victims of ``attacks`` (``<prefix>-<attack>`` under a paradigm or regime) at their seeds."""
    out = []
    for attack in attacks:
        seeds = params.grid.seeds_of(attack) if prefix is None else params.grid.seeds[:1]
        for seed in seeds[:1] if lead_only else seeds:
            out.append(Victim(attack if prefix is None else f"{prefix}-{attack}", attack, seed, prefix))
    return out


def poison(params: Params, targets: list[Victim], regime: bool = False) -> Stage:
    cells = {v.key: v.item(params, poisoned=str(layout.poisoned_dir(v.name, v.seed)),
                           record=str(layout.train_report_dir(params, v.name, v.seed) / "poison.json"))
             for v in targets}
    return Stage("stages/poison.py", "python stages/poison.py ${item.victim} --seed ${item.seed}",
                 deps=["data/prepared"],
                 params=[*SHARED, "attacks.${item.attack}", *(["regimes.${item.prefix}"] if regime else [])],
                 outs=["${item.poisoned}", "${item.record}"], code=model_code(), cells=cells)


def train(params: Params, targets: list[Victim], regime: bool = False) -> Stage:
    cells = {}
    for v in targets:
        records = layout.train_report_dir(params, v.name, v.seed)
        cells[v.key] = v.item(params, poisoned=str(layout.poisoned_dir(v.name, v.seed)),
                              model=str(layout.model_file(v.name, v.seed, "backdoored")),
                              trigger=str(layout.trigger_file(v.name, v.seed)),
                              metrics=str(records / "metrics.json"), timing=str(records / "timing.json"),
                              curves=str(layout.curves_file(v.name, v.seed)),
                              preview=str(layout.trigger_preview_file(params, v.name, v.seed)))
    return Stage("stages/train.py", "python stages/train.py ${item.victim} --seed ${item.seed}",
                 deps=["data/prepared", "${item.poisoned}"],
                 params=[*SHARED, "train", "attacks.${item.attack}", *(["regimes.${item.prefix}"] if regime else [])],
                 outs=["${item.model}", "${item.trigger}", "${item.metrics}", "${item.timing}"],
                 plots=["${item.curves}", "${item.preview}"], code=model_code(), cells=cells)


def cell_key(victim: Victim, defense: str) -> str:
    return f"{victim.name}-{defense}-{layout.seed_dir(victim.seed)}"


def defend_item(params: Params, victim: Victim, defense: str, name: str, record: Path) -> dict[str, Any]:
    """A defend cell's item: ``defense`` the instance it runs, ``name`` what its model is saved as."""
    return {**victim.item(params), "defense": defense,
            "code": cell_code(params, attack=victim.attack, defense=defense,
                              paradigm=layout.paradigm_of(params, victim.name)),
            "backdoored": str(layout.model_file(victim.name, victim.seed, "backdoored")),
            "trigger": str(layout.trigger_file(victim.name, victim.seed)),
            "model": str(layout.model_file(victim.name, victim.seed, name)), "record": str(record)}


DEFEND_PARAMS = [*SHARED, "train.augment", "data.validation_fraction", "utility", "attacks.${item.attack}",
                 "defenses.${item.defense}"]


def defend(params: Params, grid: list[tuple[Victim, str]]) -> Stage:
    cells = {cell_key(v, d): defend_item(params, v, d, d, layout.cell_dir(params, v.name, d, v.seed) / "defense.json")
             for v, d in grid}
    paradigm_task = any(layout.paradigm_of(params, v.name) for v, _ in grid)
    return Stage("stages/defend.py", "python stages/defend.py ${item.victim} ${item.defense} --seed ${item.seed}",
                 deps=["data/prepared", "${item.backdoored}", "${item.trigger}"],
                 params=[*DEFEND_PARAMS, "data.defense_fraction",
                         *(["paradigms.${item.prefix}.method", "paradigms.${item.prefix}.task"] if paradigm_task else [])],
                 outs=["${item.model}", "${item.record}"], code=model_code(), cells=cells)


def sized_defend(params: Params, grid: list[tuple[Victim, str, float]]) -> Stage:
    """The fidelity map's cells: a defense instance whose defender holds ``fraction`` of the training
    set (named ``<defense>_<percent>pct``; the share is in the command, not in params)."""
    cells = {}
    for v, d, fraction in grid:
        name = layout.sized_instance(d, fraction)
        cells[cell_key(v, name)] = {**defend_item(params, v, d, name, layout.fidelity_cell_dir(v.name, name, v.seed)
                                                  / "defense.json"), "fraction": fraction}
    return Stage("stages/defend.py",
                 "python stages/defend.py ${item.victim} ${item.defense} --seed ${item.seed} "
                 "--clean-fraction ${item.fraction}",
                 deps=["data/prepared", "${item.backdoored}", "${item.trigger}"], params=DEFEND_PARAMS,
                 outs=["${item.model}", "${item.record}"], code=model_code(), cells=cells)


def sequela(params: Params, grid: list[tuple[Victim, str]], cleansing: bool = False) -> Stage:
    """Every sequela attack on a cell's model (``cleansing``: a training-time defense's cell)."""
    cells = {}
    for v, d in grid:
        folder = layout.cell_dir(params, v.name, d, v.seed)
        shadow = layout.shadow_dir(layout.regime_of(params, v.name))
        cells[cell_key(v, d)] = {**v.item(params), "defense": d, "poisoned": str(layout.poisoned_dir(v.name, v.seed)),
                                 "trigger": str(layout.trigger_file(v.name, v.seed)), "shadow": str(shadow),
                                 "model": str(layout.model_file(v.name, v.seed, d)),
                                 "record": str(folder / "sequela.json"), "scores": str(folder / layout.SCORES_FILE)}
    paradigm_task = any(layout.paradigm_of(params, v.name) for v, _ in grid)
    return Stage("stages/sequela.py", "python stages/sequela.py ${item.victim} ${item.defense} --seed ${item.seed}",
                 deps=["data/prepared", "${item.poisoned}", "${item.trigger}", "${item.shadow}", "${item.model}"],
                 params=[*SHARED, "sequela", "data.defense_fraction",
                         "cleansers.${item.defense}" if cleansing else "defenses.${item.defense}",
                         "attacks.${item.attack}",
                         *(["paradigms.${item.prefix}.method", "paradigms.${item.prefix}.task"] if paradigm_task else [])],
                 outs=["${item.record}", "${item.scores}"], code=[*model_code(), *sequela_code(params)], cells=cells)


def reinject_baseline(params: Params, targets: list[Victim]) -> Stage:
    cells = {v.key: v.item(params, poisoned=str(layout.poisoned_dir(v.name, v.seed)),
                           trigger=str(layout.trigger_file(v.name, v.seed)),
                           clean=str(layout.clean_model_file(params, v.name)),
                           record=str(layout.baseline_dir(params, v.name, v.seed) / "reinject.json"))
             for v in targets}
    paradigm_task = any(layout.paradigm_of(params, v.name) for v in targets)
    return Stage("stages/reinject_baseline.py", "python stages/reinject_baseline.py ${item.victim} --seed ${item.seed}",
                 deps=["data/prepared", "${item.poisoned}", "${item.trigger}", "${item.clean}"],
                 params=[*SHARED, "sequela.samples", "sequela.attacks", "data.defense_fraction", "attacks.${item.attack}",
                         *(["paradigms.${item.prefix}.method", "paradigms.${item.prefix}.task"] if paradigm_task else [])],
                 outs=["${item.record}"], code=[*model_code(), *sequela_code(params, {"reinject"})], cells=cells)


def landscape(params: Params, targets: list[Victim]) -> Stage:
    defenses = list(params.section("landscape").get("defenses", []))
    cells = {v.name: v.item(params, backdoored=str(layout.model_file(v.name, v.seed, "backdoored")),
                            trigger=str(layout.trigger_file(v.name, v.seed)),
                            **{f"model_{d}": str(layout.model_file(v.name, v.seed, d)) for d in defenses},
                            tsv=str(layout.landscape_file(params, v.name, "tsv")),
                            png=str(layout.landscape_file(params, v.name, "png")))
             for v in targets}
    return Stage("stages/landscape.py", "python stages/landscape.py ${item.victim} --seed ${item.seed}",
                 deps=["data/prepared", "${item.trigger}", "${item.backdoored}", *(f"${{item.model_{d}}}" for d in defenses)],
                 params=[*SHARED, "landscape", "attacks.${item.attack}"],
                 plots=["${item.tsv}", "${item.png}"], code=model_code(), cells=cells)


def prepare() -> Stage:
    """The data family's modules are all dependencies: which one runs is ``data.dataset``, and a data
    module may build on another (tiny_imagenet on image_folder). A re-run that draws the same splits
    leaves every later stage up to date."""
    return Stage("stages/prepare.py", "python stages/prepare.py", deps=["src/backdoorlab/data", "data/embedded"],
                 params=["seed", "data.dataset", "data.options", "data.split", "data.pool_size", "data.test_size",
                         "data.shadow_size"],
                 outs=["data/prepared", str(layout.RECORDS / "data.json")])


def shadow(params: Params, regimes: list[str] | None = None) -> Stage:
    """The shadow models of the default recipe (``regimes`` None: a plain stage), or of each regime."""
    if regimes is None:
        return Stage("stages/shadow.py", "python stages/shadow.py", deps=["data/prepared"],
                     params=["seed", *SHARED, "train", "sequela.shadow"],
                     outs=[str(layout.SHADOW_DIR), str(layout.RECORDS / "shadow.json")], code=model_code())
    cells = {r: {"regime": r, "shadow": str(layout.shadow_dir(r)), "record": str(layout.regime_records(r) / "shadow.json")}
             for r in regimes}
    return Stage("stages/shadow.py", "python stages/shadow.py ${item.regime}", deps=["data/prepared"],
                 params=["seed", *SHARED, "train", "sequela.shadow", "regimes.${item.regime}"],
                 outs=["${item.shadow}", "${item.record}"], code=model_code(), cells=cells)


def train_clean(params: Params, regimes: list[str] | None = None) -> Stage:
    """A model trained without poison with the default recipe (``regimes`` None), or each regime's."""
    clean = layout.regime_clean_model_file
    if regimes is None:
        return Stage("stages/train_clean.py", "python stages/train_clean.py", deps=["data/prepared"],
                     params=["seed", *SHARED, "train"],
                     outs=[str(clean(None)), str(layout.RECORDS / "baseline" / "clean_model.json")], code=model_code())
    cells = {r: {"regime": r, "model": str(clean(r)),
                 "record": str(layout.regime_records(r) / "baseline" / "clean_model.json")} for r in regimes}
    return Stage("stages/train_clean.py", "python stages/train_clean.py ${item.regime}", deps=["data/prepared"],
                 params=["seed", *SHARED, "train", "regimes.${item.regime}"], outs=["${item.model}", "${item.record}"],
                 code=model_code(), cells=cells)

def paradigm_parts(*parts: str) -> list[str]:
    """A paradigm stage reads its method, its task and its own part of ``paradigms.<name>``, so a
    change to the downstream training re-runs neither pre-training nor the implant."""
    return [f"paradigms.${{item.paradigm}}.{part}" for part in ("method", "task", *parts)]


def paradigm_items(params: Params, names: list[str], **paths: Any) -> dict[str, dict[str, Any]]:
    return {name: {"paradigm": name, "code": cell_code(params, paradigm=name),
                   **{field: str(path(name)) for field, path in paths.items()}} for name in names}


def upstream(params: Params) -> Stage:
    cells = paradigm_items(params, params.grid.paradigms, model=layout.upstream_file,
                           record=lambda name: layout.paradigm_records("upstream", name))
    return Stage("stages/upstream.py", "python stages/upstream.py ${item.paradigm}", deps=["data/prepared"],
                 params=["seed", *SHARED, "train", *paradigm_parts("pretrain")], outs=["${item.model}", "${item.record}"],
                 code=model_code(), cells=cells)


def counterpart(params: Params) -> Stage:
    cells = paradigm_items(params, params.grid.paradigms, upstream=layout.upstream_file,
                           model=layout.counterpart_file, record=lambda name: layout.paradigm_records("counterpart", name))
    return Stage("stages/downstream.py", "python stages/downstream.py ${item.paradigm}",
                 deps=["data/prepared", "${item.upstream}"],
                 params=["seed", *SHARED, "train", *paradigm_parts("downstream")], outs=["${item.model}", "${item.record}"],
                 code=model_code(), cells=cells)


def implant(params: Params, targets: list[Victim]) -> Stage:
    cells = {v.key: v.item(params, paradigm=v.prefix, upstream=str(layout.upstream_file(v.prefix)),
                           model=str(layout.published_file(v.name, v.seed)),
                           record=str(layout.implant_record(v.name, v.seed))) for v in targets}
    return Stage("stages/implant.py", "python stages/implant.py ${item.paradigm} ${item.attack} --seed ${item.seed}",
                 deps=["data/prepared", "${item.upstream}"],
                 params=[*SHARED, "train", *paradigm_parts("implant"), "attacks.${item.attack}"],
                 outs=["${item.model}", "${item.record}"], code=model_code(), cells=cells)


def downstream(params: Params, targets: list[Victim]) -> Stage:
    cells = {}
    for v in targets:
        records = layout.train_report_dir(params, v.name, v.seed)
        cells[v.key] = v.item(params, paradigm=v.prefix, published=str(layout.published_file(v.name, v.seed)),
                              model=str(layout.model_file(v.name, v.seed, "backdoored")),
                              trigger=str(layout.trigger_file(v.name, v.seed)),
                              poisoned=str(layout.poisoned_dir(v.name, v.seed)),
                              metrics=str(records / "metrics.json"), timing=str(records / "timing.json"))
    return Stage("stages/downstream.py", "python stages/downstream.py ${item.paradigm} ${item.attack} --seed ${item.seed}",
                 deps=["data/prepared", "${item.published}"],
                 params=[*SHARED, "train", *paradigm_parts("downstream"), "attacks.${item.attack}"],
                 outs=["${item.model}", "${item.trigger}", "${item.poisoned}", "${item.metrics}", "${item.timing}"],
                 code=model_code(), cells=cells)


def retrain(params: Params, grid: list[tuple[Victim, str]]) -> Stage:
    cells = {cell_key(v, c): {**v.item(params), "cleanser": c,
                              "code": cell_code(params, attack=v.attack, cleanser=c),
                              "poisoned": str(layout.poisoned_dir(v.name, v.seed)),
                              "backdoored": str(layout.model_file(v.name, v.seed, "backdoored")),
                              "trigger": str(layout.trigger_file(v.name, v.seed)),
                              "model": str(layout.model_file(v.name, v.seed, c)),
                              "record": str(layout.cell_dir(params, v.name, c, v.seed) / "defense.json")}
             for v, c in grid}
    return Stage("stages/retrain.py", "python stages/retrain.py ${item.victim} ${item.cleanser} --seed ${item.seed}",
                 deps=["data/prepared", "${item.poisoned}", "${item.backdoored}", "${item.trigger}"],
                 params=[*SHARED, "train", "data.defense_fraction", "data.validation_fraction", "utility",
                         "attacks.${item.attack}", "cleansers.${item.cleanser}"],
                 outs=["${item.model}", "${item.record}"], code=model_code(), cells=cells)


def fidelity_report(records: list[str]) -> Stage:
    """The fidelity map's table and figure (reports/fidelity/), from the default run's cells and
    the map's own."""
    return Stage("stages/fidelity.py", "python stages/fidelity.py", deps=[str(layout.RECORDS / "data.json"), *records],
                 params=["fidelity", "grid.attacks", "grid.defenses", "grid.seeds", "data.defense_fraction",
                         "data.validation_fraction", "report"],
                 metrics=["reports/fidelity/summary.json"],
                 plots=["reports/fidelity/tables", "reports/fidelity/figures", "reports/fidelity/README.md"])


def report(params: Params, scope: str, records: list[str], figures: list[str], sections: list[str]) -> Stage:
    """A report of ``scope``: it reads whole record folders (every cell of the scope) and writes the
    committed tables, figures, summary and index under its scope's folder. It builds the sequela
    instances (which of their numbers are headlines), so their modules are its code too."""
    out = "reports" if scope == "default" else f"reports/{scope}"
    option = "" if scope == "default" else f" --scope {scope}"
    return Stage("stages/report.py", f"python stages/report.py{option}",
                 deps=[str(layout.RECORDS / "data.json"), *records, *figures],
                 params=["seed", "model", "train", "data", "utility", "grid", "defenses", "sequela", "report", *sections],
                 metrics=[f"{out}/summary.json"], plots=[f"{out}/tables", f"{out}/figures", f"{out}/README.md"],
                 code=sequela_code(params))
