"""PreAct-ResNet-18 for 32x32 inputs: the model of the field's benchmark (paper-scale profile)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.models.base import MODELS, Classifier, ModelSpec, Normalize, WidthConfig, residual_stages


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
    """3x3 stem, four stages of two pre-activation blocks, a final BN-ReLU, global average pooling."""

    # NAD's default attention maps: the outputs of the last three residual stages.
    attention_layers = ("layers.3", "layers.5", "layers.7")

    Config = WidthConfig

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        super().__init__()
        w = config.width
        self.normalize = Normalize(spec.mean, spec.std)
        self.stem = nn.Conv2d(spec.in_channels, w, 3, 1, 1, bias=False)
        self.layers, out_planes = residual_stages(PreActBlock, w)
        self.bn = nn.BatchNorm2d(out_planes)
        self.classifier = nn.Linear(out_planes, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(self.stem(self.normalize(x)))
        out = F.adaptive_avg_pool2d(F.relu(self.bn(out)), 1)
        return self.classifier(out.flatten(1))
