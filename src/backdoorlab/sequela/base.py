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
from backdoorlab.registry import Registry
from backdoorlab.settings import check_positive, parse_section, require


@dataclass(frozen=True)
class ShadowOutputs:
    """A shadow model's logits on the samples it trained on and on its held-out samples: the
    ground truth the membership attacker learns from (computed once, by the ``shadow`` stage)."""

    members: torch.Tensor  # (N, classes)
    non_members: torch.Tensor  # (N, classes)


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
    shadows: list[ShadowOutputs] = field(default_factory=list)  # for the shadow-model attack
    label: str = "sequela"


class SequelaAttack:
    """Base class. Subclasses define a ``Config`` dataclass and ``run``; ``key`` is the instance's
    params.yaml key, for errors that only the data can reveal."""

    Config: ClassVar[type]

    def __init__(self, config: Any, key: str) -> None:
        self.config = config
        self.key = key

    def run(self, model: nn.Module, ctx: SequelaContext) -> dict[str, float]:
        """Attack ``model`` (which must be left unchanged) and return ``{metric: value}``."""
        raise NotImplementedError

    def headline(self, metric: str) -> bool:
        """Whether ``metric`` belongs in ``reports/summary.json``. Every metric reaches the per-cell
        JSON and the tables; the summary keeps one number per question so runs stay comparable."""
        return True


SEQUELA: Registry[SequelaAttack] = Registry("sequela attack")


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


def parse_sequela(section: Mapping[str, Any], num_classes: int) -> SequelaSettings:
    sizes = parse_section(SampleSettings, section, "sequela", ignore=("attacks",))
    attacks_raw = section.get("attacks") or {}
    require(isinstance(attacks_raw, Mapping), "sequela.attacks", "expected a mapping")
    attacks = {}
    for name, entry in attacks_raw.items():
        key = f"sequela.attacks.{name}"
        require(isinstance(entry, Mapping) and "method" in entry, f"{key}.method", "missing required parameter")
        cls = SEQUELA.get(entry["method"], f"{key}.method")
        attacks[name] = cls(parse_section(cls.Config, entry, key, ignore=("method",)), key)
    return SequelaSettings(sizes.samples, sizes.shadow, attacks)
