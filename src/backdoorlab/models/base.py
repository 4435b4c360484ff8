"""Model registry, the input normalisation every model starts with, and safetensors I/O.

Every model takes floats in [0, 1] and normalises inside itself, so triggers, adversarial
perturbations and their eps live in pixel space. Every model names its last linear layer
``classifier``: defenses that treat the classifier specially (D3, FST) find it by that name.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch import nn

from backdoorlab.errors import DataError
from backdoorlab.io import load_tensors, save_tensors
from backdoorlab.registry import MODELS
from backdoorlab.settings import check_positive, parse_section


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild a model of the right shape: arch name, its params, data shape."""

    arch: str
    params: Mapping[str, Any]
    in_channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


@dataclass(frozen=True)
class WidthConfig:
    """The one knob every registered architecture has: its base width (channels of the first
    stage); a model subclasses this to change the default."""

    width: int = 64

    def check(self, key: str) -> None:
        check_positive(self, key, "width")


class Classifier(nn.Module):
    """What every registered model declares beyond ``nn.Module``: the layers whose outputs NAD
    matches by default (its attention maps), so a defense needs no per-model names in params, and
    the memory layout its weights (and so its activations) are kept in, where one is measurably
    faster (bench/models.py): the layout changes kernels, never what the model computes."""

    attention_layers: ClassVar[tuple[str, ...]]
    memory_format: ClassVar[torch.memory_format] = torch.contiguous_format


class Normalize(nn.Module):
    """Per-channel standardisation as the model's first layer (buffers, so it is saved)."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def residual_stages(block: Callable[[int, int, int], nn.Module], width: int) -> tuple[nn.Sequential, int]:
    """The four stages of a CIFAR ResNet-18 (widths w, 2w, 4w, 8w; strides 1, 2, 2, 2; two blocks
    each) built from ``block(in_planes, planes, stride)``, and the last stage's width. ResNet-18 and
    PreAct-ResNet-18 differ only in their block, so the layout lives here once."""
    blocks, in_planes = [], width
    for planes, stride in ((width, 1), (2 * width, 2), (4 * width, 2), (8 * width, 2)):
        blocks += [block(in_planes, planes, stride), block(planes, planes, 1)]
        in_planes = planes
    return nn.Sequential(*blocks), in_planes


def build_model(spec: ModelSpec) -> nn.Module:
    cls = MODELS.get(spec.arch, "model.arch")
    config = parse_section(cls.Config, spec.params, "model", ignore=("arch",))  # type: ignore[attr-defined]
    model = cls(config, spec)  # type: ignore[call-arg]
    return model.to(memory_format=cls.memory_format)


def save_model(model: nn.Module, path: str | Path) -> None:
    save_tensors(path, model.state_dict(), metadata={"format": "backdoorlab-state-dict"})


def load_model(spec: ModelSpec, path: str | Path) -> nn.Module:
    """Build the architecture, then fill it from a safetensors file (never a pickle)."""
    model = build_model(spec)
    state = load_tensors(path)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).splitlines()[0]
        raise DataError(f"{path}: weights do not fit model {spec.arch!r} ({first})") from None
    return model
