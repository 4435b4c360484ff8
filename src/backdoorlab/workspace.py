"""Where every stage reads and writes, and the loaders that turn those files back into objects.

One place for the file layout, so the DVC stages (dvc.yaml) and the library agree on paths:

    data/prepared/splits.safetensors   train / test / shadow splits, defender's sample order
    data/prepared/meta.json            shape, classes, normalisation statistics
    data/poisoned/<attack>/            poisoned training set, the trigger as prepared
    models/<attack>/<defense>.safetensors  (``backdoored`` for the undefended model)
    models/<attack>/trigger.safetensors    the attack's final trigger state (after training)
    models/clean.safetensors           a model trained without poison (re-injection baseline)
    models/<paradigm>/upstream.safetensors   a paradigm's clean pre-trained model (source model, encoder)
    models/<paradigm>/clean.safetensors      its clean counterpart: the victim's training without any attack
    models/<paradigm>-<attack>/upstream.safetensors  what that victim downloads (implant stage)
    models/shadow/                     the membership attacker's shadow models and their splits
    models/<regime>/shadow/, models/<regime>/clean.safetensors   the same, for a training regime
    reports/records/                   each stage's raw JSON record (DVC-cached, not in git)
    reports/...                        everything else: tables, figures, summary, committed to git

Cells of the full matrix only (an attack of ``grid.more_attacks`` or a defense of
``grid.more_defenses``) keep their records under ``reports/records/full/<block>/`` and the extra
attacks' previews and landscapes under ``reports/attacks/``, so a report, which depends on whole
folders, never pulls in stages it does not show.

A *victim* is what a backdoored model came from: an attack's name (the standalone paradigm, the
root pipeline), or ``<paradigm>-<attack>`` for the transfer and encoder paradigms, whose records
live under ``reports/records/paradigms/`` (outside ``full/``: the full report does not read them). The stages after the backdoored model (defend,
sequela, re-injection baseline) take a victim wherever they take an attack, and read its task
(the paradigm's downstream classes) through :func:`load_task`.

A victim ``<regime>-<attack>`` is an attack planted under a training regime (``regimes.<regime>``:
fewer training images, its own recipe); its records live under ``reports/records/regimes/``.
The regime's victims, clean model and shadow models train on its recipe; the defender and the test
set are the default run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, NoReturn

import torch

from backdoorlab.attacks import Attack, TriggeredSet
from backdoorlab.config import Params, derive_seed
from backdoorlab.data.base import ImageSet
from backdoorlab.errors import ConfigError, DataError, TrainingDiverged
from backdoorlab.io import load_tensors, read_json
from backdoorlab.models.base import ModelSpec
from backdoorlab.paradigms.base import ParadigmContext
from backdoorlab.paradigms.transfer import class_subset
from backdoorlab.training.loop import OptimConfig

PREPARED = Path("data/prepared")
SPLITS_FILE = PREPARED / "splits.safetensors"
META_FILE = PREPARED / "meta.json"
REPORTS = Path("reports")
RECORDS = REPORTS / "records"
CLEAN_MODEL = Path("models/clean.safetensors")
SHADOW_DIR = Path("models/shadow")
SHADOW_SPLITS = SHADOW_DIR / "membership.safetensors"


def poisoned_dir(attack: str) -> Path:
    return Path("data/poisoned") / attack


def model_file(attack: str, name: str) -> Path:
    """``name`` is ``backdoored`` or a defense instance name."""
    return Path("models") / attack / f"{name}.safetensors"


def shadow_dir(regime: str | None) -> Path:
    """The membership attacker's shadow models: of the default recipe, or of a regime's."""
    return SHADOW_DIR if regime is None else Path("models") / regime / "shadow"


def shadow_model_file(regime: str | None, index: int) -> Path:
    return shadow_dir(regime) / f"shadow_{index}.safetensors"


def shadow_splits_file(regime: str | None) -> Path:
    """Each shadow model's training half of the shadow split, and its logits on all of it."""
    return shadow_dir(regime) / SHADOW_SPLITS.name


def trigger_file(attack: str) -> Path:
    """The attack's final trigger state, written by ``train`` (after any training-time part)."""
    return Path("models") / attack / "trigger.safetensors"


def paradigm_of(params: Params, victim: str) -> str | None:
    """The paradigm of a victim ``<paradigm>-<attack>``; None for a standalone attack's name."""
    head, dash, _ = victim.partition("-")
    return head if dash and head in params.paradigms else None


def regime_of(params: Params, victim: str) -> str | None:
    """The training regime of a victim ``<regime>-<attack>``; None for any other victim."""
    head, dash, _ = victim.partition("-")
    return head if dash and head in params.regimes else None


def attack_of(params: Params, victim: str) -> str:
    """The attack a victim was planted with (its own name for the standalone paradigm)."""
    prefix = paradigm_of(params, victim) or regime_of(params, victim)
    return victim if prefix is None else victim.removeprefix(f"{prefix}-")


def regime_recipe(params: Params, regime: str | None) -> OptimConfig:
    """The recipe a regime's models (victims, clean model, shadow models) train with; ``train`` for none."""
    return params.train if regime is None else params.regimes[regime].train


def training_recipe(params: Params, victim: str) -> OptimConfig:
    """The recipe a victim trains with: its regime's, or ``train``."""
    return regime_recipe(params, regime_of(params, victim))


def upstream_file(paradigm: str) -> Path:
    """A paradigm's clean pre-trained model (stage ``upstream``)."""
    return Path("models") / paradigm / "upstream.safetensors"


def published_file(victim: str) -> Path:
    """The upstream model the victim downloads (stage ``implant``): backdoored, or the clean one."""
    return Path("models") / victim / "upstream.safetensors"


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
    ``implant/<victim>.json``."""
    return RECORDS / "paradigms" / kind / f"{name}.json"


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
    if defense in params.cleansers:
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


def baseline_dir(params: Params, attack: str) -> Path:
    """The clean model's re-injection numbers for one attack's trigger."""
    return records_root(params, attack) / "baseline" / attack


def train_report_dir(params: Params, attack: str) -> Path:
    """The backdoored model's metrics (a dependency of every defense cell: no wall times in it),
    its training time, and the poisoning facts."""
    return records_root(params, attack) / "train" / attack


def cell_dir(params: Params, attack: str, defense: str) -> Path:
    """A cell's records."""
    return records_root(params, attack, defense) / "cells" / f"{attack}-{defense}"


def trigger_preview_file(params: Params, attack: str) -> Path:
    return reports_root(params, attack) / "triggers" / f"{attack}.png"


def landscape_file(params: Params, attack: str, suffix: str) -> Path:
    return reports_root(params, attack) / "landscape" / f"{attack}.{suffix}"


@dataclass(frozen=True)
class Splits:
    train: ImageSet
    test: ImageSet
    shadow: ImageSet  # the membership-inference attacker's own data
    defense_order: torch.Tensor  # positions in ``train``; a defender holding k samples has the first k

    def defender_positions(self, fraction: float) -> torch.Tensor:
        """Positions in ``train`` of the samples a defender holding ``fraction`` of it has."""
        return self.defense_order[:max(1, math.ceil(fraction * len(self.train)))]

    def defense_subset(self, fraction: float) -> ImageSet:
        """All the clean data a defender holding ``fraction`` of the training set has."""
        return self.train.subset(self.defender_positions(fraction))

    def defender(self, fraction: float, validation_fraction: float) -> "DefenderData":
        """The defender's data split into a part to train on and a held-out validation part.

        The validation part is the first ``ceil(validation_fraction * k)`` of the defender's k
        samples in the seeded defender order (so a larger defender's validation set contains a
        smaller one's); the two parts never overlap."""
        positions = self.defender_positions(fraction)
        held_out = math.ceil(validation_fraction * len(positions))
        if held_out < 1 or held_out >= len(positions):
            raise ConfigError(f"data.validation_fraction: {validation_fraction} of the defender's "
                              f"{len(positions)} images leaves an empty training or validation part")
        return DefenderData(fit=self.train.subset(positions[held_out:]),
                            validation=self.train.subset(positions[:held_out]))

    def restricted(self, classes: list[int]) -> "Splits":
        """The task of ``classes`` only, relabelled in list order; the defender order keeps the
        same relative order (so a defender of the task holds the task's share of the same draw)."""
        kept = torch.isin(self.train.labels, torch.tensor(classes))
        position = torch.full((len(self.train),), -1, dtype=torch.long)
        position[kept] = torch.arange(int(kept.sum()))
        order = position[self.defense_order]
        return Splits(class_subset(self.train, classes), class_subset(self.test, classes),
                      class_subset(self.shadow, classes), order[order >= 0])


@dataclass(frozen=True)
class DefenderData:
    fit: ImageSet  # what a defense trains on
    validation: ImageSet  # held out: the defender's own measure of clean accuracy


def load_splits() -> Splits:
    tensors = load_tensors(SPLITS_FILE)
    try:
        return Splits(ImageSet.from_tensors(tensors, "train"), ImageSet.from_tensors(tensors, "test"),
                      ImageSet.from_tensors(tensors, "shadow"), tensors["defense_order"])
    except (KeyError, ValueError) as error:
        raise DataError(f"{SPLITS_FILE}: missing or malformed tensor ({error})") from None


@dataclass(frozen=True)
class Task:
    """What a victim's model is for: the splits of its classes and its blueprint."""

    splits: Splits
    spec: ModelSpec


def victim_training_set(params: Params, victim: str, splits: Splits) -> ImageSet:
    """The clean images a victim is poisoned and trained on (:func:`regime_training_set` of its regime)."""
    return regime_training_set(params, regime_of(params, victim), splits)


def regime_training_set(params: Params, regime: str | None, splits: Splits) -> ImageSet:
    """The whole training split without a regime; a regime's ``train_size`` training images: the last
    of the seeded defender order, so they never overlap the defender's clean data (the first of that
    order), which stays the default run's."""
    if regime is None:
        return splits.train
    size = params.regimes[regime].train_size
    defender = max(len(splits.defender_positions(params.clean_fraction(d))) for d in params.grid.regime_defenses)
    if size + defender > len(splits.train):
        raise ConfigError(f"regimes.{regime}.train_size: {size} images and the defender's {defender} do not fit "
                          f"in the {len(splits.train)}-image training split")
    return splits.train.subset(splits.defense_order[len(splits.defense_order) - size:])


def paradigm_task(params: Params, paradigm: str) -> Task:
    """The downstream task of ``paradigms.<paradigm>`` (the data set's own when it keeps every class)."""
    splits, spec = load_splits(), model_spec(params)
    classes = params.paradigms[paradigm].downstream_classes(spec.num_classes)
    if classes == list(range(spec.num_classes)):
        return Task(splits, spec)
    return Task(splits.restricted(classes), dataclasses.replace(spec, num_classes=len(classes)))


def load_task(params: Params, victim: str) -> Task:
    """A victim's task: the data set's, or its paradigm's downstream task."""
    paradigm = paradigm_of(params, victim)
    return Task(load_splits(), model_spec(params)) if paradigm is None else paradigm_task(params, paradigm)


def model_spec(params: Params) -> ModelSpec:
    meta = read_json(META_FILE)
    channels, size, _ = meta["image_shape"]
    return ModelSpec(arch=params.model_arch, params=params.model_params, in_channels=channels,
                     image_size=size, num_classes=meta["num_classes"],
                     mean=tuple(meta["mean"]), std=tuple(meta["std"]))


def paradigm_context(params: Params, *names: str) -> ParadigmContext:
    """What a paradigm stage hands the paradigm; ``names`` (paradigm, attack) seed its streams."""
    splits = load_splits()
    return ParadigmContext(train=splits.train, shadow=splits.shadow, spec=model_spec(params), recipe=params.train,
                           device=params.torch_device(), label="-".join(names),
                           seed=lambda *parts: derive_seed(params.seed, "paradigm", *names, *parts))


@dataclass(frozen=True)
class PoisonedData:
    train: ImageSet
    poison_indices: torch.Tensor


def load_poisoned(attack: str) -> PoisonedData:
    train = load_tensors(poisoned_dir(attack) / "train.safetensors")
    return PoisonedData(ImageSet.from_tensors(train, "train"), train["poison_indices"])


def load_attack(params: Params, name: str, state: Path | None = None) -> Attack:
    """The attack of victim ``name`` (``attacks.<name>``, or a paradigm victim's attack built for
    its task) with its trigger state restored from ``state`` (default: the final state the
    ``train`` or ``downstream`` stage wrote)."""
    paradigm, path = paradigm_of(params, name), state or trigger_file(name)
    attack = (params.attacks[attack_of(params, name)] if paradigm is None
              else params.paradigm_attack(paradigm, attack_of(params, name)))
    try:
        attack.load_state(load_tensors(path))
    except KeyError as error:
        raise DataError(f"{path}: not a trigger state of attacks.{name} (missing {error}); "
                        "re-run its poison and train stages") from None
    return attack


def triggered_test(params: Params, name: str, test: ImageSet) -> TriggeredSet:
    """The attack's triggered test set, from its final trigger state (cheap: a batch of stamps)."""
    return load_attack(params, name).triggered_test(test)


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message, then the usage) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split())
        self.exit(2, f"error: {message} ({usage})\n")


def stage_arguments(doc: str | None, *names: str) -> argparse.Namespace:
    """Parse a stage's positional arguments (``attack``, ``defense``) with a usage line; a wrong or
    missing one is one line and exit 2 (names are checked against params.yaml by ``require_known``)."""
    parser = OneLineParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    for name in names:  # "attack?": an optional one
        parser.add_argument(name.rstrip("?"), nargs="?" if name.endswith("?") else None,
                            help=f"a name under params.yaml's `{name.rstrip('?')}s` section")
    return parser.parse_args()


def require_known(params: Params, attack: str | None = None, defense: str | None = None,
                  paradigm: str | None = None, cleanser: str | None = None, regime: str | None = None) -> None:
    """One-line errors for a stage asked to run an attack (or victim ``<paradigm>-<attack>``,
    ``<regime>-<attack>``), defense (post-training, or training-time for the cells they share),
    paradigm, training-time defense or training regime params.yaml does not define."""
    if cleanser is not None and cleanser not in params.cleansers:
        raise ConfigError(f"cleanser {cleanser!r}: not in params.yaml's cleansers "
                          f"(defined: {', '.join(params.cleansers) or 'none'})")
    if regime is not None and regime not in params.regimes:
        raise ConfigError(f"regime {regime!r}: not in params.yaml's regimes "
                          f"(defined: {', '.join(params.regimes) or 'none'})")
    if paradigm is not None and paradigm not in params.paradigms:
        raise ConfigError(f"paradigm {paradigm!r}: not in params.yaml's paradigms "
                          f"(defined: {', '.join(params.paradigms) or 'none'})")
    if attack is not None:
        attack = attack_of(params, attack)
    if attack is not None and attack not in params.attacks:
        raise ConfigError(f"attack {attack!r}: not in params.yaml's attacks (defined: {', '.join(params.attacks)})")
    if defense is not None and defense not in params.defenses and defense not in params.cleansers:
        raise ConfigError(f"defense {defense!r}: not in params.yaml's defenses "
                          f"(defined: {', '.join(params.defenses)})")


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; a user error becomes one line on stderr and exit code 2, a diverged
    training one line and exit code 1."""
    try:
        main()
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
