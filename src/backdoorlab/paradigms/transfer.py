"""The transfer-based paradigm: a model pre-trained on a source task, fine-tuned on a downstream one.

The downstream model copies every layer of the source model but its ``classifier``, which is
replaced by a new linear layer for the downstream classes (seeded). The victim then fine-tunes
all layers, only the last block and the new head (``last_block``), or the head alone (``head``,
a linear probe of the source features): the parameters of every other layer get ``requires_grad = False``, which the pipeline's optimizers skip. Their
BatchNorm running statistics still follow the downstream data in train mode, as they do when a
PyTorch user freezes layers this way; the weights do not move.

The last block is found from the registry's model layout, not per architecture: the last element
of the model's last ``nn.Sequential`` child, plus every child after it (``features.2`` and
``classifier`` in the small CNN; ``layers.7``, ``bn`` and ``classifier`` in PreAct-ResNet-18).

On one data set, source and downstream tasks are class sets (:func:`class_subset`), disjoint so
that the transfer is real; a list the task leaves out is derived from the data set's class count
(:meth:`TransferTask.resolve`): downstream the lower half, source the upper half (0-4 and 5-9 on
ten classes). :class:`TransferParadigm` is what the two registered threat models
share (the source model, the victim's fine-tuning): ``transfer_data`` (a clean source model, a
poisoned downstream set) and ``transfer_model`` (a backdoored source model, clean downstream data).
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch
from torch import nn

from backdoorlab.attacks.base import Attack
from backdoorlab.data.base import ImageSet, class_subset
from backdoorlab.models.base import ModelSpec, build_model
from backdoorlab.models.layers import module_by_name
from backdoorlab.paradigms.base import Paradigm, ParadigmContext, Trained
from backdoorlab.paradigms.composed import seeded_linear
from backdoorlab.settings import check_positive, require
from backdoorlab.training.loop import accuracy
from backdoorlab.training.recipe import init_model, train_with_recipe

FineTune = Literal["all", "last_block", "head"]


def last_block(model: nn.Module) -> list[str]:
    """Names of the modules ``last_block`` fine-tuning trains (module docstring)."""
    children = list(model.named_children())
    stacks = [i for i, (_, child) in enumerate(children) if isinstance(child, nn.Sequential) and len(child) > 0]
    require(bool(stacks), "fine_tune", f"{type(model).__name__} has no nn.Sequential of blocks to find the last one in")
    name, stack = children[stacks[-1]]
    return [f"{name}.{len(stack) - 1}"] + [child_name for child_name, _ in children[stacks[-1] + 1:]]


def downstream_model(source: nn.Module, num_classes: int, fine_tune: FineTune,
                     generator: torch.Generator) -> nn.Module:
    """A copy of ``source`` with a new ``classifier`` for ``num_classes`` and, for ``last_block``
    or ``head``, every layer before the last block or the head frozen. ``source`` is left as it is."""
    head = getattr(source, "classifier", None)
    require(isinstance(head, nn.Linear), "model", f"{type(source).__name__} has no linear 'classifier' to replace")
    model = copy.deepcopy(source)
    model.classifier = seeded_linear(head.in_features, num_classes, generator).to(head.weight.device)
    if fine_tune != "all":
        model.requires_grad_(False)
        for name in last_block(model) if fine_tune == "last_block" else ["classifier"]:
            module_by_name(model, name, "fine_tune").requires_grad_(True)
    return model


MIN_CLASSES = 4  # two source and two downstream classes


def lower_half(num_classes: int) -> tuple[int, ...]:
    """The derived downstream task: classes 0 .. C // 2 - 1, so its t-th class is class t."""
    return tuple(range(num_classes // 2))


def upper_half(num_classes: int, downstream: tuple[int, ...]) -> tuple[int, ...]:
    """The derived source task: classes C // 2 .. C - 1 but those of the downstream task (an explicit
    downstream list may reach into them), so that the transfer is real."""
    return tuple(c for c in range(num_classes // 2, num_classes) if c not in downstream)


@dataclass(frozen=True)
class TransferTask:
    """Source and downstream tasks as class lists of the one data set, relabelled in list order.
    None (the default): derived from the data set's class count when the task is resolved, so that
    one params.yaml runs on any data set of at least four classes."""

    source_classes: tuple[int, ...] | None = None
    downstream_classes: tuple[int, ...] | None = None

    def check(self, key: str) -> None:
        for name in ("source_classes", "downstream_classes"):
            classes = getattr(self, name)
            if classes is None:
                continue
            require(len(set(classes)) == len(classes) >= 2, f"{key}.{name}",
                    f"needs at least two distinct classes, got {list(classes)}")
            require(all(c >= 0 for c in classes), f"{key}.{name}", f"class indices must be >= 0, got {list(classes)}")

    def downstream_class(self, index: int) -> int:
        """The data set class at ``index`` of the downstream task, known without the class count
        (the derived task's t-th class is t: :func:`lower_half`)."""
        return index if self.downstream_classes is None else self.downstream_classes[index]

    def resolve(self, num_classes: int, key: str,
                derived_source: Callable[[int, tuple[int, ...]], tuple[int, ...]]) -> TransferTask:
        """Both lists for a data set of ``num_classes`` classes (``derived_source(C, downstream)``
        fills a missing source list), checked against it: one line naming ``key`` (the task's)
        when the data set is too small for the task or lacks one of its classes."""
        require(num_classes >= MIN_CLASSES, key, f"a transfer task needs at least {MIN_CLASSES} classes "
                f"(2 source, 2 downstream); the data set has {num_classes}")
        downstream = lower_half(num_classes) if self.downstream_classes is None else self.downstream_classes
        source = derived_source(num_classes, downstream) if self.source_classes is None else self.source_classes
        task = TransferTask(source, downstream)
        task.check(key)
        largest = max(task.source_classes + task.downstream_classes)
        require(largest < num_classes, key, f"class {largest} is not in the {num_classes}-class data set")
        return task


@dataclass(frozen=True)
class SourceTraining:
    """The source model is trained from scratch with params.yaml's ``train`` recipe."""

    epochs: int | None = None  # None: train.epochs

    def check(self, key: str) -> None:
        require(self.epochs is None or self.epochs > 0, f"{key}.epochs", f"must be > 0, got {self.epochs}")


@dataclass(frozen=True)
class TransferFineTuning:
    """The victim's fine-tuning: the ``train`` recipe with these epochs and peak LR."""

    fine_tune: FineTune = "all"
    epochs: int = 6
    lr: float = 0.01

    def check(self, key: str) -> None:
        check_positive(self, key, "epochs", "lr")


class TransferParadigm(Paradigm):
    """What the two transfer instances share: the source model and the victim's fine-tuning."""

    def __init__(self, config: Any, key: str) -> None:
        super().__init__(config, key)
        self.task: TransferTask = config.task

    def derived_source(self, num_classes: int, downstream: tuple[int, ...]) -> tuple[int, ...]:
        """The source task when the params leave it out: the upper half (:func:`upper_half`)."""
        return upper_half(num_classes, downstream)

    def resolved_task(self, num_classes: int) -> TransferTask:
        """The task on a data set of ``num_classes`` classes: what every stage trains on."""
        return self.task.resolve(num_classes, f"{self.key}.task", self.derived_source)

    def downstream_classes(self, num_classes: int) -> list[int]:
        return list(self.resolved_task(num_classes).downstream_classes)

    def source_spec(self, spec: ModelSpec) -> ModelSpec:
        """The source model's blueprint: ``spec`` (the data set's) with the source task's classes."""
        return dataclasses.replace(spec, num_classes=len(self.resolved_task(spec.num_classes).source_classes))

    def upstream_model(self, spec: ModelSpec) -> nn.Module:
        return build_model(self.source_spec(spec))

    def train_source(self, data: ImageSet, ctx: ParadigmContext, purpose: str, epochs: int | None) -> nn.Module:
        """A source model trained from scratch on ``data`` (source-task labels) with the recipe
        (``epochs``: None for the recipe's)."""
        model = init_model(self.source_spec(ctx.spec), ctx.seed(purpose, "init"), ctx.device)
        train_with_recipe(model, data, ctx.recipe, generator=ctx.generator(purpose, "train"), device=ctx.device,
                          epochs=epochs, label=f"{ctx.label} source")
        return model

    def source_data(self, data: ImageSet, ctx: ParadigmContext) -> ImageSet:
        """``data``'s images of the source task, relabelled in its order."""
        return class_subset(data, self.resolved_task(ctx.spec.num_classes).source_classes)

    def pretrain(self, ctx: ParadigmContext) -> Trained:
        model = self.train_source(self.source_data(ctx.train, ctx), ctx, "pretrain", self.config.pretrain.epochs)
        return Trained(model, {"source_ca": accuracy(model, self.source_data(ctx.shadow, ctx), ctx.device)})

    def check_attack(self, attack: Attack, key: str) -> None:
        listed = self.task.downstream_classes
        if listed is not None:  # a derived downstream task is the one the attack was built for
            require(attack.target < len(listed), key,
                    f"target {attack.target} is not a class of the downstream task ({len(listed)} classes)")

    def fine_tune(self, upstream: nn.Module, data: ImageSet, task: ModelSpec, ctx: ParadigmContext) -> nn.Module:
        cfg: TransferFineTuning = self.config.downstream
        model = downstream_model(upstream.to(ctx.device), task.num_classes, cfg.fine_tune, ctx.generator("head"))
        recipe = dataclasses.replace(ctx.recipe, epochs=cfg.epochs, lr=cfg.lr)
        train_with_recipe(model, data, recipe, generator=ctx.generator("fine_tune"), device=ctx.device,
                          label=f"{ctx.label} fine-tune ({cfg.fine_tune})")
        return model.requires_grad_(True)
