"""The one training loop every stage and defense builds on, and batched inference.

``fit`` runs SGD over in-memory uint8 data: seeded shuffling, batch augmentation, a per-step LR
schedule, an optional custom loss (defenses add terms to cross-entropy) and an optional hook after
each step (D3 projects weights back onto a sphere there); an update that is more than one
gradient step (SAM's two passes) replaces the default with ``step_fn``. Mixed precision is a knob
(``precision``): ``auto`` trains in fp32 on a CPU, for exact reproducibility, and with autocast on a
GPU (bf16 where supported, else fp16 with a gradient scaler). On a GPU, batches are copied from
pinned memory without blocking and laid out channels-last, which tensor-core convolutions prefer.
A NaN or infinite loss stops training at once with :class:`TrainingDiverged` (one line naming the
run, the step and the LR) rather than saving a model full of NaNs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Literal, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.errors import TrainingDiverged
from backdoorlab.progress import Progress
from backdoorlab.settings import check_non_negative, check_positive
from backdoorlab.training.augment import AugmentConfig, augment_batch
from backdoorlab.training.optim import SGD, Optimizer
from backdoorlab.training.schedules import Schedule

LossFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
# A whole update on one batch (forwards, backwards, optimizer step); returns the loss to report.
StepFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
EpochHook = Callable[[int, float], None]
Precision = Literal["auto", "fp32", "bf16", "fp16"]


class BatchHook(Protocol):
    """How an attack that controls training takes part in it (WaNet's noise mode, the input-aware
    generator): it rewrites each augmented batch, may add a loss term, and may step models of its
    own after the victim's optimizer has stepped."""

    def transform(self, model: nn.Module, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """The batch to train on, its labels, and an extra loss (or None)."""
        ...

    def after_step(self) -> None:
        """Called after every optimizer step (e.g. to step the hook's own optimizer)."""
        ...


@dataclass(frozen=True)
class OptimConfig:
    """SGD settings shared by training from scratch and by fine-tuning defenses."""

    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    precision: Precision = "auto"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    warmup_steps: int = 0  # linear LR warm-up before the cosine schedule (0: none)

    def check(self, key: str) -> None:
        check_non_negative(self, key, "epochs", "momentum", "weight_decay", "warmup_steps")
        check_positive(self, key, "batch_size", "lr")


def to_float(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 images on the CPU -> floats in [0, 1] on ``device`` (on a GPU: a non-blocking copy
    from pinned memory, channels-last)."""
    if device.type != "cuda":
        return images.to(device).float().div_(255.0)
    x = images.pin_memory().to(device, non_blocking=True).float().div_(255.0)
    return x.contiguous(memory_format=torch.channels_last) if x.dim() == 4 else x


def autocast_dtype(precision: Precision, device: torch.device) -> torch.dtype | None:
    """The dtype ``precision`` computes in on ``device``; None for fp32 (no autocast). ``auto`` is
    fp32 on a CPU (bf16 pays off only with AMX, and fp32 reproduces exactly) and on a GPU bf16
    where the GPU supports it (Ampere and later), else fp16."""
    if precision == "auto":
        if device.type != "cuda":
            return None
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def sgd(model: nn.Module, lr: float, momentum: float, weight_decay: float) -> SGD:
    return SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)


def cross_entropy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def steps_per_epoch(n: int, batch_size: int) -> int:
    """Batches per epoch: the last partial batch is dropped unless it is the only one."""
    return max(1, n // batch_size)


def fit(model: nn.Module, data: ImageSet, *, epochs: int, batch_size: int,
        optimizer: Optimizer, schedule: Schedule, generator: torch.Generator,
        augment: AugmentConfig | None, device: torch.device, precision: Precision = "fp32",
        loss_fn: LossFn = cross_entropy, after_step: Callable[[], None] | None = None,
        on_epoch: EpochHook | None = None, label: str = "train", step_fn: StepFn | None = None,
        batch_hook: BatchHook | None = None) -> None:
    """Train ``model`` in place. ``schedule(step)`` sets the LR before every step.

    ``step_fn``, if given, performs each update itself (``loss_fn`` and ``precision`` are then
    unused; the schedule still drives ``optimizer``'s LR). ``batch_hook`` (an attack that controls
    training) rewrites every batch after augmentation and may add a loss term."""
    if step_fn is not None and batch_hook is not None:
        raise ValueError("fit: step_fn and batch_hook cannot be combined")
    progress = Progress(label)
    dtype = autocast_dtype(precision, device)
    # fp16's narrow range underflows small gradients: scale the loss up, and skip a step whose
    # gradients overflowed (bf16 has fp32's range and needs no scaler).
    scaler = torch.amp.GradScaler(device.type) if dtype == torch.float16 else None
    batches = steps_per_epoch(len(data), batch_size)
    step = 0
    for epoch in range(1, epochs + 1):
        model.train()
        order = torch.randperm(len(data), generator=generator)
        total = 0.0
        for b in range(batches):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = to_float(data.images[idx], device)
            y = data.labels[idx].to(device)
            if augment is not None:
                x = augment_batch(x, augment, generator)
            extra: torch.Tensor | None = None
            if batch_hook is not None:
                x, y, extra = batch_hook.transform(model, x, y)
            for group in optimizer.param_groups:
                group["lr"] = schedule(step)
            if step_fn is not None:
                loss = step_fn(model, x, y)
            else:
                with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                    loss = loss_fn(model, x, y)
                    if extra is not None:
                        loss = loss + extra
                optimizer.zero_grad(set_to_none=True)
                if scaler is None:
                    loss.backward()
                    optimizer.step()
                else:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)  # type: ignore[arg-type]  # our SGD has torch.optim's param_groups
                    scaler.update()
                if batch_hook is not None:
                    batch_hook.after_step()
            value = loss.item()
            if not math.isfinite(value):
                raise TrainingDiverged(f"{label}: loss became {value} at epoch {epoch}, step {step + 1} "
                                       f"(LR {optimizer.param_groups[0]['lr']:.4g}); lower the learning rate")
            if after_step is not None:
                after_step()
            total += value
            step += 1
            progress.batch(epoch, epochs, b + 1, batches)
        mean_loss = total / batches
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
        else:
            progress.log(f"epoch {epoch}/{epochs} loss {mean_loss:.4f}")


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, device: torch.device,
                   batch_size: int = 256) -> torch.Tensor:
    """Logits of a uint8 image tensor, in eval mode, on the CPU. Batches of 256: on a CPU, 1024
    images of activations overflow the caches and run about 1.7x slower per image."""
    was_training = model.training
    model.eval()
    out = [model(to_float(images[i:i + batch_size], device)).float().cpu()
           for i in range(0, len(images), batch_size)]
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0)


def accuracy(model: nn.Module, data: ImageSet, device: torch.device) -> float:
    if len(data) == 0:
        return float("nan")
    return (predict_logits(model, data.images, device).argmax(1) == data.labels).float().mean().item()
