"""Train a model from scratch with the pipeline's recipe (``params.yaml``'s ``train`` section).

The backdoored models, the clean reference model and the membership-inference shadow models must
all come out of the same recipe (an attacker who trains shadow models is assumed to know it), so
they share these two functions instead of each stage wiring ``fit`` by hand.
"""

from __future__ import annotations

import torch
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.models.base import ModelSpec, build_model
from backdoorlab.training.loop import BatchHook, EpochHook, LossFn, OptimConfig, cross_entropy, fit, sgd, steps_per_epoch
from backdoorlab.training.schedules import cosine, with_warmup


def init_model(spec: ModelSpec, seed: int, device: torch.device) -> nn.Module:
    """A freshly initialised model whose weights depend on ``seed`` only (channels-last on a GPU,
    like the batches ``fit`` feeds it)."""
    torch.manual_seed(seed)
    model = build_model(spec)
    return model.to(device, memory_format=torch.channels_last) if device.type == "cuda" else model.to(device)


def train_with_recipe(model: nn.Module, data: ImageSet, cfg: OptimConfig, *, generator: torch.Generator,
                      device: torch.device, epochs: int | None = None, on_epoch: EpochHook | None = None,
                      label: str = "train", batch_hook: BatchHook | None = None, loss_fn: LossFn = cross_entropy,
                      augment: bool = True) -> None:
    """Train ``model`` in place on ``data``: SGD with the recipe's momentum and weight decay, a
    linear warm-up then cosine LR per step, the recipe's augmentation and precision. ``epochs``
    overrides ``cfg.epochs``; ``batch_hook`` lets an attack that controls training take part;
    ``loss_fn`` and ``augment=False`` let a training-time defense (ABL) train with its own loss
    and without augmentation while keeping the recipe's optimizer and schedule."""
    epochs = cfg.epochs if epochs is None else epochs
    total = epochs * steps_per_epoch(len(data), cfg.batch_size)
    fit(model, data, epochs=epochs, batch_size=cfg.batch_size,
        optimizer=sgd(model, cfg.lr, cfg.momentum, cfg.weight_decay),
        schedule=with_warmup(cosine(cfg.lr, total), cfg.warmup_steps),
        generator=generator, augment=cfg.augment if augment else None, device=device, precision=cfg.precision,
        on_epoch=on_epoch, label=label, batch_hook=batch_hook, loss_fn=loss_fn)
