"""The sequela interface: an attack on a (defended or undefended) model that returns numbers.

``params.yaml``'s ``sequela.attacks`` holds named instances (``method`` picks the class), like
defenses. Each instance returns flat ``{metric: value}``; the stage prefixes them with the
instance name, and the report takes ``defended - undefended`` for every number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

import torch
from torch import nn

from backdoorlab.attacks.base import Attack, TriggeredSet
from backdoorlab.data.base import ImageSet
from backdoorlab.models.base import ModelSpec
from backdoorlab.registry import SEQUELA
from backdoorlab.settings import check_positive, parse_section, require


@dataclass(frozen=True)
class ReferenceModels:
    """The membership attacker's shadow (reference) models, trained by the ``shadow`` stage with the
    target's recipe, each on a seeded half of the attacker's own data (``population``), so the
    attacker knows which samples each saw. Their logits on that data are computed once; ``models``
    answer queries on other samples (RMIA asks them about the target's candidates)."""

    population: ImageSet
    logits: torch.Tensor  # (models, population, classes)
    trained_on: torch.Tensor  # (models, population) bool: which samples each model trained on
    models: list[nn.Module]

    def __len__(self) -> int:
        return len(self.models)

    def members_of(self, index: int) -> torch.Tensor:
        """Logits of model ``index`` on the samples it trained on."""
        return self.logits[index][self.trained_on[index]]

    def non_members_of(self, index: int) -> torch.Tensor:
        """Logits of model ``index`` on the samples it never saw."""
        return self.logits[index][~self.trained_on[index]]

    def restricted(self, classes: list[int], population: ImageSet) -> "ReferenceModels":
        """The same models as classifiers of ``classes`` only (their logits of those classes, in list
        order), on ``population``: the samples of those classes, relabelled in that order (a
        paradigm's downstream task that keeps some of the data set's classes)."""
        keep, index = torch.isin(self.population.labels, torch.tensor(classes)), torch.tensor(classes)
        return ReferenceModels(population, self.logits[:, keep][..., index], self.trained_on[:, keep],
                               [ClassSubset(model, index) for model in self.models])


class ClassSubset(nn.Module):
    """A classifier's logits of some classes only, in a given order."""

    def __init__(self, model: nn.Module, index: torch.Tensor) -> None:
        super().__init__()
        self.model, self.index = model, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)[:, self.index.to(x.device)]


@dataclass
class SequelaContext:
    """The data an outside attacker (or auditor) works with, split so nothing is reused.

    ``members``/``non_members`` are disjoint halves for evaluation; the ``calibration_*`` sets are
    other members/non-members, used only to choose thresholds.
    """

    spec: ModelSpec
    device: torch.device
    generator: torch.Generator
    members: ImageSet
    non_members: ImageSet
    calibration_members: ImageSet
    calibration_non_members: ImageSet
    clean_test: ImageSet
    attack: Attack  # the backdoor attack of this cell (re-injection re-uses its trigger)
    defense_data: ImageSet  # the defender's clean subset
    triggered_test: TriggeredSet  # this attack's triggered test set (re-injection's ASR)
    reference: ReferenceModels | None = None  # the shadow-model attack's and RMIA's
    label: str = "sequela"


@dataclass(frozen=True)
class MembershipScores:
    """A membership attack's per-sample scores (larger: more likely a member) on the evaluation and
    calibration splits."""

    members: torch.Tensor
    non_members: torch.Tensor
    calibration_members: torch.Tensor
    calibration_non_members: torch.Tensor


@dataclass(frozen=True)
class Measurement:
    """What an instance measured: its numbers and, for a membership attack, the per-sample scores
    behind them (``{score name: scores}``; the name is empty for an attack with one score), which
    the sequela stage keeps so the report can resample them for standard errors."""

    metrics: dict[str, float]
    scores: dict[str, MembershipScores] = field(default_factory=dict)


class SequelaAttack:
    """Base class. Subclasses define a ``Config`` dataclass and ``run`` (or ``measure``); ``key`` is
    the instance's params.yaml key, for errors that only the data can reveal."""

    Config: ClassVar[type]

    def __init__(self, config: Any, key: str) -> None:
        self.config = config
        self.key = key

    def run(self, model: nn.Module, ctx: SequelaContext) -> dict[str, float]:
        """Attack ``model`` (which must be left unchanged) and return ``{metric: value}``."""
        raise NotImplementedError

    def measure(self, model: nn.Module, ctx: SequelaContext) -> Measurement:
        """``run``'s numbers, with whatever per-sample data a subclass keeps."""
        return Measurement(self.run(model, ctx))

    def headline(self, metric: str) -> bool:
        """Whether ``metric`` belongs in ``reports/summary.json``. Every metric reaches the per-cell
        JSON and the tables; the summary keeps one number per question so runs stay comparable."""
        return True




@dataclass(frozen=True)
class ShadowSettings:
    """The membership attacker's shadow models, trained once by the ``shadow`` stage."""

    models: int = 2
    epochs: int | None = None  # None: the training recipe's ``train.epochs``

    def check(self, key: str) -> None:
        check_positive(self, key, "models")
        require(self.epochs is None or self.epochs > 0, f"{key}.epochs", f"must be > 0, got {self.epochs}")


@dataclass(frozen=True)
class SampleSettings:
    # Members and non-members per split (evaluation and calibration each get this many of both).
    samples: int = 500
    shadow: ShadowSettings = field(default_factory=ShadowSettings)

    def check(self, key: str) -> None:
        require(self.samples > 0, f"{key}.samples", f"must be > 0, got {self.samples}")


@dataclass(frozen=True)
class SequelaSettings:
    samples: int
    shadow: ShadowSettings
    attacks: dict[str, SequelaAttack]


def parse_sequela(section: Mapping[str, Any], methods: set[str] | None = None) -> SequelaSettings:
    """The ``sequela`` section; ``methods``: build only the instances of these methods (a stage that
    runs some of them imports only theirs)."""
    sizes = parse_section(SampleSettings, section, "sequela", ignore=("attacks",))
    attacks_raw = section.get("attacks") or {}
    require(isinstance(attacks_raw, Mapping), "sequela.attacks", "expected a mapping")
    attacks = {}
    for name, entry in attacks_raw.items():
        key = f"sequela.attacks.{name}"
        require(isinstance(entry, Mapping) and "method" in entry, f"{key}.method", "missing required parameter")
        if methods is not None and entry["method"] not in methods:
            continue
        cls = SEQUELA.get(entry["method"], f"{key}.method")
        attacks[name] = cls(parse_section(cls.Config, entry, key, ignore=("method",)), key)
    return SequelaSettings(sizes.samples, sizes.shadow, attacks)
