"""The transfer-based paradigm: a model pre-trained on a source task, fine-tuned on a downstream one.

The downstream model copies every layer of the source model but its ``classifier``, which is
replaced by a new linear layer for the downstream classes (seeded). The victim then fine-tunes
either all layers, or only the last block and the new head (``last_block``): the parameters of
every earlier layer get ``requires_grad = False``, which the pipeline's optimizers skip. Their
BatchNorm running statistics still follow the downstream data in train mode, as they do when a
PyTorch user freezes layers this way; the weights do not move.

The last block is found from the registry's model layout, not per architecture: the last element
of the model's last ``nn.Sequential`` child, plus every child after it (``features.2`` and
``classifier`` in the small CNN; ``layers.7``, ``bn`` and ``classifier`` in PreAct-ResNet-18).

On one data set, source and downstream tasks are disjoint class sets (:func:`class_subset`), so
that the transfer is real.
"""

from __future__ import annotations

import copy
from typing import Literal, Sequence

import torch
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.models.layers import module_by_name
from backdoorlab.paradigms.composed import seeded_linear
from backdoorlab.settings import require

FineTune = Literal["all", "last_block"]


def class_subset(data: ImageSet, classes: Sequence[int]) -> ImageSet:
    """The images of ``classes``, relabelled 0..len(classes)-1 in the order given."""
    require(len(set(classes)) == len(classes) > 0, "classes", f"must be distinct and non-empty, got {list(classes)}")
    relabel = torch.full((int(data.labels.max()) + 1,), -1, dtype=torch.long)
    for new, old in enumerate(classes):
        require(0 <= old < len(relabel), "classes", f"class {old} is not in the data")
        relabel[old] = new
    keep = torch.nonzero(relabel[data.labels] >= 0).flatten()
    return ImageSet(data.images[keep], relabel[data.labels[keep]])


def last_block(model: nn.Module) -> list[str]:
    """Names of the modules ``last_block`` fine-tuning trains (module docstring)."""
    children = list(model.named_children())
    stacks = [i for i, (_, child) in enumerate(children) if isinstance(child, nn.Sequential) and len(child) > 0]
    require(bool(stacks), "fine_tune", f"{type(model).__name__} has no nn.Sequential of blocks to find the last one in")
    name, stack = children[stacks[-1]]
    return [f"{name}.{len(stack) - 1}"] + [child_name for child_name, _ in children[stacks[-1] + 1:]]


def downstream_model(source: nn.Module, num_classes: int, fine_tune: FineTune,
                     generator: torch.Generator) -> nn.Module:
    """A copy of ``source`` with a new ``classifier`` for ``num_classes`` and, for ``last_block``,
    every layer before the last block frozen. ``source`` is left as it is."""
    head = getattr(source, "classifier", None)
    require(isinstance(head, nn.Linear), "model", f"{type(source).__name__} has no linear 'classifier' to replace")
    model = copy.deepcopy(source)
    model.classifier = seeded_linear(head.in_features, num_classes, generator).to(head.weight.device)
    if fine_tune == "last_block":
        model.requires_grad_(False)
        for name in last_block(model):
            module_by_name(model, name, "fine_tune").requires_grad_(True)
    return model
