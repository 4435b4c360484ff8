"""Every path of the workspace, and how a victim's name reads; nothing else.

One place for the file layout, so the stages, the report and the DAG generator agree on paths:

    data/prepared/splits.safetensors        train / test / shadow splits, defender's sample order
    data/prepared/meta.json                 shape, classes, normalisation statistics
    data/poisoned/<victim>/s<seed>/         poisoned training set, the trigger as prepared
    models/<victim>/s<seed>/<defense>.safetensors   (``backdoored`` for the undefended model)
    models/<victim>/s<seed>/trigger.safetensors     the attack's final trigger state (after training)
    models/clean.safetensors                a model trained without poison (re-injection baseline)
    models/shadow/                          the membership attacker's shadow models and their splits
    models/<regime>/shadow/, models/<regime>/clean.safetensors   the same, for a training regime
    models/<paradigm>/upstream.safetensors  a paradigm's clean pre-trained model (source model, encoder)
    models/<paradigm>/clean.safetensors     its clean counterpart: the victim's training without any attack
    models/<victim>/s<seed>/upstream.safetensors   what a paradigm's victim downloads (implant stage)
    reports/records/                        each stage's raw JSON record (DVC-cached, not in git)
    reports/...                             everything else: tables, figures, summary, committed to git

A *victim* is what a backdoored model came from: an attack's name (the standalone paradigm), or
``<paradigm>-<attack>`` for the transfer and encoder paradigms, or ``<regime>-<attack>`` for an
attack planted under a training regime. A *seed* is a replicate (``grid.seeds``): each victim and
cell is run once per seed, and its files sit in the seed's folder ``s<seed>``.

Cells of the full matrix only (an attack of ``grid.more_attacks`` or a defense of
``grid.more_defenses``) keep their records under ``reports/records/full/<block>/`` and the extra
attacks' previews and landscapes under ``reports/attacks/``, so a report, which depends on whole
folders, never pulls in stages it does not show; the paradigms' and regimes' records live under
``reports/records/paradigms/`` and ``reports/records/regimes/``. The fidelity map's cells (a
default-run victim against a defense instance that holds another share of the clean data, named
``<defense>_<percent>pct``) keep theirs under ``reports/records/fidelity/``.
"""

from __future__ import annotations

from pathlib import Path

from backdoorlab.config import Params

PREPARED = Path("data/prepared")
SPLITS_FILE = PREPARED / "splits.safetensors"
META_FILE = PREPARED / "meta.json"
REPORTS = Path("reports")
RECORDS = REPORTS / "records"
CLEAN_MODEL = Path("models/clean.safetensors")
SHADOW_DIR = Path("models/shadow")
SHADOW_SPLITS = SHADOW_DIR / "membership.safetensors"
SCORES_FILE = "membership_scores.safetensors"  # a sequela cell's membership scores, resampled by the report


def seed_dir(seed: int) -> str:
    return f"s{seed}"


def paradigm_of(params: Params, victim: str) -> str | None:
    """The paradigm of a victim ``<paradigm>-<attack>``; None for a standalone attack's name."""
    head, dash, _ = victim.partition("-")
    return head if dash and head in params.section("paradigms") else None


def regime_of(params: Params, victim: str) -> str | None:
    """The training regime of a victim ``<regime>-<attack>``; None for any other victim."""
    head, dash, _ = victim.partition("-")
    return head if dash and head in params.section("regimes") else None


def attack_of(params: Params, victim: str) -> str:
    """The attack a victim was planted with (its own name for the standalone paradigm)."""
    prefix = paradigm_of(params, victim) or regime_of(params, victim)
    return victim if prefix is None else victim.removeprefix(f"{prefix}-")


def poisoned_dir(victim: str, seed: int) -> Path:
    return Path("data/poisoned") / victim / seed_dir(seed)


def model_file(victim: str, seed: int, name: str) -> Path:
    """``name`` is ``backdoored`` or a defense instance name."""
    return Path("models") / victim / seed_dir(seed) / f"{name}.safetensors"


def trigger_file(victim: str, seed: int) -> Path:
    """The attack's final trigger state, written by ``train`` (after any training-time part)."""
    return Path("models") / victim / seed_dir(seed) / "trigger.safetensors"


def shadow_dir(regime: str | None) -> Path:
    """The membership attacker's shadow models: of the default recipe, or of a regime's."""
    return SHADOW_DIR if regime is None else Path("models") / regime / "shadow"


def shadow_model_file(regime: str | None, index: int) -> Path:
    return shadow_dir(regime) / f"shadow_{index}.safetensors"


def shadow_splits_file(regime: str | None) -> Path:
    """Each shadow model's training half of the shadow split, and its logits on all of it."""
    return shadow_dir(regime) / SHADOW_SPLITS.name


def upstream_file(paradigm: str) -> Path:
    """A paradigm's clean pre-trained model (stage ``upstream``)."""
    return Path("models") / paradigm / "upstream.safetensors"


def published_file(victim: str, seed: int) -> Path:
    """The upstream model the victim downloads (stage ``implant``): backdoored, or the clean one."""
    return Path("models") / victim / seed_dir(seed) / "upstream.safetensors"


def counterpart_file(paradigm: str) -> Path:
    """A paradigm's clean counterpart: the victim's training from the clean upstream on clean data."""
    return Path("models") / paradigm / "clean.safetensors"


def regime_clean_model_file(regime: str | None) -> Path:
    """The model trained without poison (stage ``train_clean``), with the default recipe or a regime's."""
    return CLEAN_MODEL if regime is None else Path("models") / regime / "clean.safetensors"


def clean_model_file(params: Params, victim: str) -> Path:
    """The model the victim would have without the attack: the re-injection baseline."""
    paradigm = paradigm_of(params, victim)
    return regime_clean_model_file(regime_of(params, victim)) if paradigm is None else counterpart_file(paradigm)


def paradigm_records(kind: str, name: str) -> Path:
    """A paradigm stage's record: ``upstream/<paradigm>.json``, ``counterpart/<paradigm>.json``,
    ``implant/<victim>/s<seed>.json``."""
    return RECORDS / "paradigms" / kind / f"{name}.json"


def implant_record(victim: str, seed: int) -> Path:
    return RECORDS / "paradigms" / "implant" / victim / f"{seed_dir(seed)}.json"


def sized_instance(defense: str, fraction: float) -> str:
    """A defense instance run with ``fraction`` of the training set as its clean data, as the
    fidelity map names it: ``ft_2pct``, ``d3_cal_2p5pct`` (DVC stage names allow no dot)."""
    return f"{defense}_{100 * fraction:g}pct".replace(".", "p")


def fidelity_cell_dir(victim: str, instance: str, seed: int) -> Path:
    """A fidelity-map cell's records (``instance``: a :func:`sized_instance` name)."""
    return RECORDS / "fidelity" / "cells" / f"{victim}-{instance}" / seed_dir(seed)


def in_default_run(params: Params, attack: str, defense: str | None = None) -> bool:
    """Whether a cell (or an attack's own stages) belongs to the default run, not the full matrix only."""
    return attack in params.grid.attacks and (defense is None or defense in params.grid.defenses)


def records_root(params: Params, attack: str, defense: str | None = None) -> Path:
    """The default run's records, or those of one block of the full matrix (full/<block>/dvc.yaml):
    ``attacks`` (an extra attack's own stages and its cells with the default defenses),
    ``defenses`` (a default attack with an extra defense) or ``both``."""
    if in_default_run(params, attack, defense):
        return RECORDS
    if paradigm_of(params, attack) is not None:
        return RECORDS / "paradigms"
    if regime_of(params, attack) is not None:
        return RECORDS / "regimes"
    if defense in params.section("cleansers"):
        return RECORDS / "full" / "cleansing"
    if attack in params.grid.attacks:
        return RECORDS / "full" / "defenses"
    return RECORDS / "full" / ("attacks" if defense is None or defense in params.grid.defenses else "both")


def regime_records(regime: str | None) -> Path:
    """Where the records of a regime's clean and shadow models go (the default run's: ``records/``)."""
    return RECORDS if regime is None else RECORDS / "regimes" / regime


def reports_root(params: Params, attack: str) -> Path:
    """Where an attack's trigger preview and landscape go (read by the reports that show it)."""
    if regime_of(params, attack) is not None:
        return REPORTS / "regimes"
    return REPORTS if in_default_run(params, attack) else REPORTS / "attacks"


def baseline_dir(params: Params, victim: str, seed: int) -> Path:
    """The clean model's re-injection numbers for one victim's trigger and poisons."""
    return records_root(params, victim) / "baseline" / victim / seed_dir(seed)


def train_report_dir(params: Params, victim: str, seed: int) -> Path:
    """The backdoored model's metrics (a dependency of every defense cell: no wall times in it),
    its training time, and the poisoning facts."""
    return records_root(params, victim) / "train" / victim / seed_dir(seed)


def cell_dir(params: Params, victim: str, defense: str, seed: int) -> Path:
    """A cell's records."""
    return records_root(params, victim, defense) / "cells" / f"{victim}-{defense}" / seed_dir(seed)


def curves_file(victim: str, seed: int) -> Path:
    """The backdoored model's per-epoch training curves (a `dvc plots` TSV)."""
    return REPORTS / "curves" / f"{victim}-{seed_dir(seed)}.tsv"


def trigger_preview_file(params: Params, victim: str, seed: int) -> Path:
    return reports_root(params, victim) / "triggers" / f"{victim}-{seed_dir(seed)}.png"


def landscape_file(params: Params, attack: str, suffix: str) -> Path:
    """The D3 paper's diagnostic, drawn for the first seed's models."""
    return reports_root(params, attack) / "landscape" / f"{attack}.{suffix}"
