"""VGG-16 with batch norm, in its CIFAR form: thirteen 3x3 convolutions and one linear classifier.

ImageNet's VGG ends in three fully connected layers of 4,096 units sized for 7x7 maps; on 32x32
inputs five poolings leave a 1x1 map, and the field's CIFAR variant classifies its 512 channels
with a single linear layer. Pooling rounds up (``ceil_mode``), which is the same on 32x32 inputs
and keeps 28x28 ones (Fashion-MNIST, MNIST) from shrinking to nothing; a final global average
makes larger inputs (STL-10, Tiny-ImageNet) work too.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.models.base import MODELS, Classifier, ModelSpec, Normalize, WidthConfig

# Convolutions per stage and each stage's width as a multiple of ``width`` (VGG-16: 64 ... 512).
STAGES = ((2, 1), (2, 2), (3, 4), (3, 8), (3, 8))


def vgg_stage(in_channels: int, out_channels: int, convs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(convs):
        layers += [nn.Conv2d(in_channels if i == 0 else out_channels, out_channels, 3, padding=1, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2, ceil_mode=True))


@MODELS.register("vgg16_bn")
class VGG16BN(Classifier):
    """Five stages of conv-BN-ReLU (2, 2, 3, 3, 3 convolutions), each ending in 2x2 max-pooling."""

    # NAD's default attention maps: the outputs of the last three stages.
    attention_layers = ("features.2", "features.3", "features.4")

    Config = WidthConfig

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        super().__init__()
        self.normalize = Normalize(spec.mean, spec.std)
        stages, in_channels = [], spec.in_channels
        for convs, multiple in STAGES:
            stages.append(vgg_stage(in_channels, multiple * config.width, convs))
            in_channels = multiple * config.width
        self.features = nn.Sequential(*stages)
        self.classifier = nn.Linear(in_channels, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.adaptive_avg_pool2d(self.features(self.normalize(x)), 1)
        return self.classifier(out.flatten(1))
