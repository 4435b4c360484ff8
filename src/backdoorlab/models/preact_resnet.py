"""PreAct-ResNet-18 for 32x32 inputs: the model of the field's benchmark (paper-scale profile)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.models.base import MODELS, Classifier, ModelSpec, Normalize, WidthConfig


class PreActBlock(nn.Module):
    """BN-ReLU-conv twice, with the shortcut taken after the first BN-ReLU when it must project."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


@MODELS.register("preact_resnet18")
class PreActResNet18(Classifier):
    # NAD's default attention maps: the outputs of the last three residual stages.
    attention_layers = ("layers.3", "layers.5", "layers.7")

    Config = WidthConfig

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        super().__init__()
        w = config.width
        self.normalize = Normalize(spec.mean, spec.std)
        self.stem = nn.Conv2d(spec.in_channels, w, 3, 1, 1, bias=False)
        layers, in_planes = [], w
        for planes, stride in ((w, 1), (2 * w, 2), (4 * w, 2), (8 * w, 2)):
            layers += [PreActBlock(in_planes, planes, stride), PreActBlock(planes, planes, 1)]
            in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.classifier = nn.Linear(in_planes, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(self.normalize(x)))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1)
        return self.classifier(out.flatten(1))
