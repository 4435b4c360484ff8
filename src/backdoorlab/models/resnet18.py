"""ResNet-18 adapted to 32x32 inputs, as the field trains it on CIFAR-scale images.

ImageNet's ResNet-18 starts with a 7x7 stride-2 convolution and a max-pool, which would shrink a
32x32 image to 8x8 before the first residual block. The CIFAR adaptation (He et al. 2016, Sec.
4.2's spirit; the variant the backdoor literature trains) replaces both with one 3x3 stride-1
convolution, so the four residual stages see 32, 16, 8 and 4 pixels. Blocks are post-activation
(conv-BN-ReLU, the residual sum, then ReLU), unlike :mod:`preact_resnet18`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.models.base import MODELS, Classifier, ModelSpec, Normalize, WidthConfig, residual_stages


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the shortcut (a 1x1 conv and BN when the shape changes), then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


@MODELS.register("resnet18")
class ResNet18(Classifier):
    """3x3 stem, four stages of two basic blocks (widths w, 2w, 4w, 8w), global average pooling."""

    # NAD's default attention maps: the outputs of the last three residual stages.
    attention_layers = ("layers.3", "layers.5", "layers.7")

    Config = WidthConfig

    def __init__(self, config: Config, spec: ModelSpec) -> None:
        super().__init__()
        w = config.width
        self.normalize = Normalize(spec.mean, spec.std)
        self.conv1 = nn.Conv2d(spec.in_channels, w, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        self.layers, out_planes = residual_stages(BasicBlock, w)
        self.classifier = nn.Linear(out_planes, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(self.normalize(x))))
        out = F.adaptive_avg_pool2d(self.layers(out), 1)
        return self.classifier(out.flatten(1))
