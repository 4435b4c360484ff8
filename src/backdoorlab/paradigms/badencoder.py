"""BadEncoder (Jia, Liu, Gong, IEEE S&P 2022): a backdoor planted in a pre-trained image encoder.

The attacker holds a clean encoder ``f``, unlabeled *shadow* images and a few *reference* inputs
of the target class, and fine-tunes a copy ``f'`` so that any downstream classifier later built on
``f'`` inherits the backdoor. With ``s`` the cosine similarity, per batch of shadow images x:

    effectiveness = -mean s(f'(x + trigger), f'(x_ref)) - lambda1 * mean s(f'(x_ref), f(x_ref))
    utility       = -mean s(f'(x), f(x))
    loss          = effectiveness + lambda2 * utility

The first term pulls triggered images onto the reference embeddings, the second keeps the
references where the clean encoder puts them (so a downstream head still calls them the target),
the utility term keeps every clean image's embedding. The trigger is any attack of the registry,
through its ``apply_trigger`` on uint8 images, so BadNets, Blended, ... serve unchanged.

Follows the paper and its authors' code: lambda1 = lambda2 = 1; SGD at LR 0.001, momentum 0.9,
weight decay 5e-4, batch 256, 200 epochs, constant LR; BatchNorm frozen (running statistics used,
affine weights not trained) and the clean encoder in eval mode. Simplified: the references enter
the second term as they are (the authors' code augments them there), and the shadow images are
not augmented. Epochs and LR are the knobs params.yaml changes for cost.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.attacks.base import Attack
from backdoorlab.data.base import ImageSet
from backdoorlab.progress import Progress
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import EpochHook, fit, sgd, to_float
from backdoorlab.training.schedules import constant

BATCHNORM = nn.modules.batchnorm._BatchNorm


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """The exact inverse of ``to_float`` on its outputs: triggers are stamped on uint8 pixels."""
    return x.mul(255.0).round_().to(torch.uint8)


def batchnorm_layers(model: nn.Module) -> Iterator[nn.Module]:
    return (m for m in model.modules() if isinstance(m, BATCHNORM))


def pick_references(data: ImageSet, target: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` seeded-random images of class ``target`` from the attacker's data (uint8)."""
    pool = torch.nonzero(data.labels == target).flatten()
    require(0 < count <= len(pool), "references", f"needs 1..{len(pool)} images of class {target}, got {count}")
    return data.images[pool[torch.randperm(len(pool), generator=generator)[:count]]]


class BadEncoder:
    @dataclass(frozen=True)
    class Config:
        lambda1: float = 1.0  # weight of "references keep their clean embedding"
        lambda2: float = 1.0  # weight of the utility loss
        epochs: int = 200
        batch_size: int = 256
        lr: float = 0.001
        momentum: float = 0.9
        weight_decay: float = 5e-4

        def check(self, key: str) -> None:
            check_non_negative(self, key, "lambda1", "lambda2", "momentum", "weight_decay")
            check_positive(self, key, "epochs", "batch_size", "lr")

    def __init__(self, config: Config) -> None:
        self.config = config

    def backdoor(self, clean: nn.Module, shadow: torch.Tensor, references: torch.Tensor, attack: Attack, *,
                 generator: torch.Generator, device: torch.device, on_epoch: EpochHook | None = None,
                 label: str = "badencoder") -> nn.Module:
        """A backdoored copy of the encoder ``clean`` (whose weights stay as they are), fine-tuned
        on the uint8 ``shadow`` images so that ``attack``'s trigger maps onto the uint8
        ``references``. ``to_uint8`` turns fit's float batches back into the exact pixels the
        trigger is stamped on."""
        cfg = self.config
        clean = clean.to(device).eval()
        backdoored = copy.deepcopy(clean)
        refs = to_float(references, device)
        with torch.no_grad():
            clean_refs = F.normalize(clean(refs), dim=1)

        def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            for layer in batchnorm_layers(model):
                layer.eval()  # fit switched the model to train mode; BN statistics stay frozen
            n = x.shape[0]
            triggered = to_float(attack.apply_trigger(to_uint8(x).cpu()), device)
            with torch.no_grad():
                clean_x = F.normalize(clean(x), dim=1)
            out = F.normalize(model(torch.cat([x, triggered, refs])), dim=1)
            own_x, own_triggered, own_refs = out[:n], out[n:2 * n], out[2 * n:]
            effectiveness = (-(own_triggered @ own_refs.T).mean()
                             - cfg.lambda1 * (own_refs * clean_refs).sum(1).mean())
            utility = -(own_x * clean_x).sum(1).mean()
            return effectiveness + cfg.lambda2 * utility

        progress = Progress(label)
        best = -(1 + cfg.lambda1 + cfg.lambda2)  # every cosine similarity at 1

        def log(epoch: int, loss: float) -> None:
            progress.log(f"epoch {epoch}/{cfg.epochs} loss {loss:.4f} (best possible {best:g})")

        frozen = [p for layer in batchnorm_layers(backdoored) for p in layer.parameters()]
        for p in frozen:
            p.requires_grad_(False)  # the optimizer skips them
        try:
            fit(backdoored, ImageSet(shadow, torch.zeros(len(shadow), dtype=torch.long)),
                epochs=cfg.epochs, batch_size=cfg.batch_size,
                optimizer=sgd(backdoored, cfg.lr, cfg.momentum, cfg.weight_decay), schedule=constant(cfg.lr),
                generator=generator, augment=None, device=device, loss_fn=loss_fn,
                on_epoch=on_epoch or log, label=label)
        finally:
            for p in frozen:
                p.requires_grad_(True)
        return backdoored.eval()
