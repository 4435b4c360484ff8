"""The default model: a three-block CNN small enough to train in seconds on two CPU cores."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backdoorlab.models.base import MODELS, Classifier, ModelSpec, Normalize, WidthConfig


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
    )


@MODELS.register("small_cnn")
class SmallCNN(Classifier):
    """conv(w) -> conv(2w) -> conv(4w), each with BN, ReLU and 2x2 max-pooling, then a linear
    classifier on the flattened map (a 3x3 map for 28x28 inputs, 4x4 for 32x32)."""

    # NAD's default attention maps: the outputs of the 2nd and 3rd conv blocks.
    attention_layers = ("features.1", "features.2")
    # Channels-last: max-pooling a channels-first map is the slowest op of this model on a CPU;
    # channels-last trains it 1.2-1.5x faster on every kernel path measured (AMX, AVX2, default)
    # and evaluates it 2.1-2.6x faster with the AMX and AVX2 kernels, at par with the default
    # ones; bench/models.py prints the comparison.
    memory_format = torch.channels_last

    @dataclass(frozen=True)
    class Config(WidthConfig):
        width: int = 16

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        super().__init__()
        w = config.width
        self.normalize = Normalize(spec.mean, spec.std)
        self.features = nn.Sequential(
            conv_block(spec.in_channels, w), conv_block(w, 2 * w), conv_block(2 * w, 4 * w)
        )
        side = spec.image_size // 8
        self.classifier = nn.Linear(4 * w * side * side, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(self.normalize(x)).flatten(1))
