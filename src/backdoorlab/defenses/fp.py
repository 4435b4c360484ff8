"""Fine-Pruning (Liu, Dolan-Gavitt, Garg; RAID 2018): prune dormant channels, then fine-tune.

A backdoor often lives in channels of the last convolutional layer that clean inputs barely
activate. Fine-Pruning ranks those channels by their mean activation on the defender's clean data
and prunes them, least active first, as long as clean accuracy on the defender's held-out
validation data stays within ``max_acc_drop`` of the unpruned model and at most ``max_ratio`` of
the channels are gone. Fine-tuning then repairs the clean accuracy, with the pruned channels held
at zero, and erases what pruning left of the backdoor.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.defenses.pruning import LastConv, last_conv
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import accuracy, to_float


@torch.no_grad()
def mean_activation(model: nn.Module, layer: nn.Module, data: ImageSet, device: torch.device,
                    batch_size: int = 512) -> torch.Tensor:
    """Mean post-ReLU activation of each output channel of ``layer`` over ``data`` (eval mode)."""
    sums: list[torch.Tensor] = []
    handle = layer.register_forward_hook(
        lambda module, inputs, output: sums.append(output.float().relu().sum(dim=(0, 2, 3))
                                                   / (output.shape[2] * output.shape[3])))
    was_training = model.training
    model.eval()
    try:
        for i in range(0, len(data), batch_size):
            model(to_float(data.images[i:i + batch_size], device))
    finally:
        handle.remove()
        model.train(was_training)
    return torch.stack(sums).sum(0).cpu() / len(data)


def prune_order_within_budget(model: nn.Module, target: LastConv, order: torch.Tensor,
                              data: ImageSet, device: torch.device, max_drop: float,
                              max_count: int) -> tuple[int, float, float]:
    """How many channels of ``order`` can go before accuracy on ``data`` drops by > ``max_drop``.

    The paper prunes one channel at a time; since accuracy falls (near) monotonically with the
    number of pruned channels, a binary search over that number finds the same stopping point with
    log2(channels) evaluations instead of one per channel. Channels are masked through a forward
    hook while searching, so nothing needs restoring. Returns (count, accuracy before, accuracy
    with that many pruned).
    """
    mask = torch.ones(target.conv.out_channels, device=device)
    handle = target.output.register_forward_hook(
        lambda module, inputs, output: output * mask.view(1, -1, 1, 1))

    def accuracy_pruned(count: int) -> float:
        mask.fill_(1.0)
        mask[order[:count]] = 0.0
        return accuracy(model, data, device)

    try:
        base = accuracy_pruned(0)
        low, high, kept = 0, max_count, base  # invariant: pruning ``low`` channels is within budget
        while low < high:
            middle = (low + high + 1) // 2
            acc = accuracy_pruned(middle)
            if base - acc <= max_drop:
                low, kept = middle, acc
            else:
                high = middle - 1
    finally:
        handle.remove()
    return low, base, kept


@DEFENSES.register("fp")
class FinePruning(Defense):
    # A larger allowed drop prunes more channels.
    strength = Strength("max_acc_drop", (0.02, 0.05, 0.1, 0.2, 0.3))

    @dataclass(frozen=True)
    class Config:
        max_acc_drop: float = 0.10  # stop before clean accuracy falls by more than this
        max_ratio: float = 0.9  # never prune more than this fraction of the channels
        epochs: int = 10
        batch_size: int = 128
        lr: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 5e-4
        augment: bool = True

        def check(self, key: str) -> None:
            check_non_negative(self, key, "max_acc_drop", "epochs", "momentum", "weight_decay")
            check_positive(self, key, "batch_size", "lr")
            require(0 < self.max_ratio <= 1, f"{key}.max_ratio", f"must be in (0, 1], got {self.max_ratio!r}")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        target = last_conv(model)
        activation = mean_activation(model, target.output, ctx.clean, ctx.device)
        order = activation.argsort()  # least active first
        channels = target.conv.out_channels
        count, acc_before, acc_pruned = prune_order_within_budget(
            model, target, order, ctx.validation, ctx.device, cfg.max_acc_drop, int(cfg.max_ratio * channels))
        zeroed = target.prune(order[:count])
        finetune(model, ctx, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                 momentum=cfg.momentum, weight_decay=cfg.weight_decay, augment=cfg.augment,
                 after_step=zeroed.apply)
        return DefenseOutcome(model, {
            "pruned": count, "pruned_fraction": count / channels,
            "val_acc_unpruned": acc_before, "val_acc_pruned": acc_pruned,
        })
