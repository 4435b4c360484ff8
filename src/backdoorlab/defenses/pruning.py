"""Channel pruning that keeps the architecture: pruned channels are zeroed weights, not removed.

Fine-Pruning and ANP both prune channels, but the pipeline saves and reloads every defended model
with the backdoored model's blueprint, so state-dict keys and shapes must not change. A pruned
channel is therefore a set of parameter rows held at zero; ``ZeroedChannels.apply`` re-zeroes them
after every fine-tuning step (a gradient or weight decay would otherwise revive them).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class ZeroedChannels:
    """Parameter rows (output channels) that must stay zero."""

    targets: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)

    def add(self, param: torch.Tensor | None, channels: torch.Tensor) -> None:
        if param is not None and len(channels) > 0:
            self.targets.append((param, channels.to(param.device)))

    def apply(self) -> None:
        with torch.no_grad():
            for param, channels in self.targets:
                param[channels] = 0


@dataclass(frozen=True)
class LastConv:
    """The last convolution of a model and, if one follows it, the BatchNorm of its channels."""

    conv: nn.Conv2d
    norm: nn.BatchNorm2d | None

    @property
    def output(self) -> nn.Module:
        """The module whose output is the channels' final pre-activation value."""
        return self.norm if self.norm is not None else self.conv

    def prune(self, channels: torch.Tensor) -> ZeroedChannels:
        """Zero the channels' conv filters and BN scale and shift, so they output exactly 0."""
        zeroed = ZeroedChannels()
        zeroed.add(self.conv.weight, channels)
        zeroed.add(self.conv.bias, channels)
        if self.norm is not None:
            zeroed.add(self.norm.weight, channels)
            zeroed.add(self.norm.bias, channels)
        zeroed.apply()
        return zeroed


def last_conv(model: nn.Module) -> LastConv:
    """Find the last ``Conv2d`` in module order, and the first matching BatchNorm2d after it.

    Generic over architectures: in a conv-BN-ReLU stack the BN is the conv's own; in a pre-activation
    ResNet it is the final BN after the last residual sum, whose channels are the conv's.
    """
    modules = list(model.modules())
    positions = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if not positions:
        raise ValueError("the model has no Conv2d layer to prune")
    conv = modules[positions[-1]]
    norm = next((m for m in modules[positions[-1] + 1:]
                 if isinstance(m, nn.BatchNorm2d) and m.num_features == conv.out_channels), None)
    return LastConv(conv, norm)
