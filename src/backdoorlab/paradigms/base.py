"""The paradigm interface: how the model a victim deploys comes to carry a backdoor.

Sha et al. study three paradigms. In the *standalone* one (the root pipeline: ``poison`` then
``train``) the victim trains from scratch on poisoned data. In the others the victim builds on a
pre-trained *upstream* model, so three cached stages produce the deployed model:

    upstream@<paradigm>            clean pre-training (a source-task model, a SimCLR encoder)
    implant@<paradigm>-<attack>    the upstream the victim downloads: backdoored by the attacker
                                   (BadEncoder, a poisoned source model) or the clean one as it is
    downstream@<paradigm>-<attack> the victim's own training on its task (poisoned data, or clean
                                   data when the upstream carries the backdoor)

plus ``downstream@<paradigm>`` from the clean upstream on clean data: the *clean counterpart*
whose accuracy shows what the backdoor costs. A params.yaml entry under ``paradigms`` is a named
instance: ``method`` picks the class, and the four parts ``task``, ``pretrain``, ``implant`` and
``downstream`` are the method's ``Config`` fields, one per stage, so that changing the downstream
head re-runs neither pre-training nor the implant (each stage lists only its own part).

The deployed model always has the registry architecture of ``model.arch`` with the task's class
count, so every defense, metric and sequela attack applies to it unchanged.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from backdoorlab.attacks.base import Attack
from backdoorlab.data.base import ImageSet
from backdoorlab.errors import DataError
from backdoorlab.io import load_tensors
from backdoorlab.models.base import ModelSpec
from backdoorlab.registry import PARADIGMS
from backdoorlab.settings import parse_section, require
from backdoorlab.training.loop import OptimConfig


@dataclass(frozen=True)
class ParadigmContext:
    """What the paradigm's stages hand it. ``train`` is the victim's training split (every class,
    unpoisoned), ``shadow`` the attacker's own data, ``spec`` the data set's model blueprint
    (every class), ``recipe`` params.yaml's ``train`` section, ``seed(*parts)`` a stable seed per
    purpose (the run's seed, the stage's names and ``parts``)."""

    train: ImageSet
    shadow: ImageSet
    spec: ModelSpec
    recipe: OptimConfig
    device: torch.device
    seed: Callable[..., int]
    label: str

    def generator(self, *parts: str) -> torch.Generator:
        return torch.Generator().manual_seed(self.seed(*parts))


@dataclass
class Trained:
    """A stage's model and the facts worth recording about it (JSON scalars)."""

    model: nn.Module
    notes: dict[str, Any] = field(default_factory=dict)


class Paradigm:
    """Base class. Subclasses define ``Config`` (fields ``task``, ``pretrain``, ``implant``,
    ``downstream``, each a dataclass), ``upstream_model``, ``pretrain`` and ``fine_tune``."""

    Config: ClassVar[type]
    # True: the victim's own training data are poisoned (and the published upstream is clean).
    poisons_downstream: ClassVar[bool] = False

    def __init__(self, config: Any, key: str) -> None:
        self.config = config
        self.key = key  # paradigms.<name>: named by what only the data set can show wrong (its class count)

    @classmethod
    def from_section(cls, name: str, section: Mapping[str, Any]) -> "Paradigm":
        """The instance ``paradigms.<name>`` of params.yaml (its ``method`` picked this class)."""
        key = f"paradigms.{name}"
        require("-" not in name, key, "a paradigm name may not contain '-' (cells are named <paradigm>-<attack>)")
        return cls(parse_section(cls.Config, section, key, ignore=("method",)), key)

    def validate_attack(self, attack: Attack, key: str) -> None:
        """One line naming ``key`` unless ``attack`` (built for the victim's task) works in this paradigm."""
        check_task_attack(attack, key)
        self.check_attack(attack, key)

    def downstream_classes(self, num_classes: int) -> list[int]:
        """The data set's classes that make up the victim's task, in label order (default: all)."""
        return list(range(num_classes))

    def upstream_model(self, spec: ModelSpec) -> nn.Module:
        """A blank model of the upstream's architecture, to load its saved weights into."""
        raise NotImplementedError

    def pretrain(self, ctx: ParadigmContext) -> Trained:
        """The clean upstream model."""
        raise NotImplementedError

    def check_attack(self, attack: Attack, key: str) -> None:
        """Whether ``attack`` (built for the victim's task) makes sense in this paradigm."""

    def implant(self, upstream: nn.Module, attack: Attack, ctx: ParadigmContext) -> Trained:
        """What the victim downloads; ``attack`` is built for the victim's task. Default: the
        clean upstream unchanged (the backdoor comes with the victim's poisoned data)."""
        return Trained(upstream, {"backdoored_upstream": False})

    def fine_tune(self, upstream: nn.Module, data: ImageSet, task: ModelSpec, ctx: ParadigmContext) -> nn.Module:
        """The victim's training on its task's ``data``: returns the deployed model, of the
        registry architecture ``task`` describes."""
        raise NotImplementedError




def check_task_attack(attack: Attack, key: str) -> None:
    """The paradigms poison through ``apply_trigger`` alone: an attack that fits its trigger on the
    attacker's data or takes part in the victim's training needs stages they do not have."""
    fitted = type(attack).prepare is not Attack.prepare
    hooked = type(attack).training_hook is not Attack.training_hook
    require(not (fitted or hooked), key, f"{type(attack).__name__} {'fits its trigger' if fitted else 'trains with the victim'}; "
            "the transfer and encoder paradigms take attacks whose trigger is a function of their params "
            "(badnets, blended, sig)")


def for_task(attack: Attack, num_classes: int, target: int | None = None) -> Attack:
    """The same attack for a task of ``num_classes`` classes (and another ``target``)."""
    config = attack.config if target is None else dataclasses.replace(attack.config, target=target)
    return type(attack)(config, attack.image_shape, num_classes)


def load_weights(model: nn.Module, path: Path) -> nn.Module:
    """Fill ``model`` from a safetensors file (never a pickle), with a one-line error naming it."""
    try:
        model.load_state_dict(load_tensors(path))
    except RuntimeError as error:
        raise DataError(f"{path}: weights do not fit {type(model).__name__} ({str(error).splitlines()[0]})") from None
    return model



def build_paradigm(name: str, section: Mapping[str, Any]) -> Paradigm:
    """The instance ``paradigms.<name>`` of params.yaml (its ``method`` picks the class)."""
    require(isinstance(section, Mapping) and "method" in section, f"paradigms.{name}.method", "missing required parameter")
    return PARADIGMS.get(section["method"], f"paradigms.{name}.method").from_section(name, section)
