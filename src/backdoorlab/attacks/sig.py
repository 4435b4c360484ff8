"""SIG (Barni, Kallas & Tondi, 2019): a clean-label attack with a sinusoidal signal.

A horizontal sinusoid ``v(i, j) = delta * sin(2 pi j f / W)`` (the same on every row and channel,
in pixel units) is added to training images *of the target class*, whose labels stay correct: the
model learns the signal as a feature of the target class. At test time the signal is added to
non-target images. Defaults follow the paper's MNIST setting (delta 20, f 6).

``poison_rate`` is, as in BackdoorBench (the D3 paper's benchmark), a fraction of the whole
training set drawn from the target class only: 0.1 of a 10-class set is close to every target
image. Only the all-to-one mode exists (a clean-label attack cannot relabel).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from backdoorlab.attacks.base import ATTACKS, Attack, PoisonConfig, PoisonResult
from backdoorlab.data.base import ImageSet
from backdoorlab.settings import require


@ATTACKS.register("sig")
class SIG(Attack):
    label_modes = ("all_to_one",)

    @dataclass(frozen=True)
    class Config(PoisonConfig):
        delta: float = 20.0  # amplitude, in pixel units (0-255)
        frequency: float = 6.0  # periods across the image width

    def check(self, key: str) -> None:
        cfg = self.config
        require(0 < cfg.delta <= 255, f"{key}.delta", f"must be in (0, 255], got {cfg.delta}")
        require(cfg.frequency > 0, f"{key}.frequency", f"must be > 0, got {cfg.frequency}")

    def signal(self) -> torch.Tensor:
        """The sinusoid as a (1, 1, H, W) float tensor in pixel units."""
        _, h, w = self.image_shape
        columns = torch.arange(w, dtype=torch.float32)
        row = self.config.delta * torch.sin(2 * math.pi * columns * self.config.frequency / w)
        return row.view(1, 1, 1, w).expand(1, 1, h, w)

    def apply_trigger(self, images: torch.Tensor) -> torch.Tensor:
        return (images.float() + self.signal()).round_().clamp_(0, 255).to(torch.uint8)

    def poison(self, train: ImageSet, generator: torch.Generator) -> PoisonResult:
        """Add the signal to ``round(poison_rate * N)`` images of the target class; labels unchanged."""
        candidates = torch.nonzero(train.labels == self.target).flatten()
        count = round(self.config.poison_rate * len(train))
        require(count <= len(candidates), "poison_rate",
                f"asks for {count} poisoned samples but the target class has {len(candidates)} images "
                "(SIG poisons the target class only)")
        chosen = candidates[torch.randperm(len(candidates), generator=generator)[:count]].sort().values
        images = train.images.clone()
        images[chosen] = self.apply_trigger(images[chosen])
        return PoisonResult(ImageSet(images, train.labels.clone()), chosen)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"signal": self.signal()[0].contiguous()}
