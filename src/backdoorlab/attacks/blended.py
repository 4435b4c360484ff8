"""Blended (Chen et al., 2017): a fixed full-image pattern mixed in, x' = (1 - a) x + a p.

The pattern is uniform noise drawn from ``pattern_seed``, so it is reproducible from params alone
(the original used either a photograph or random noise; noise needs no extra file).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from backdoorlab.attacks.base import ATTACKS, Attack, PoisonConfig
from backdoorlab.settings import require


@ATTACKS.register("blended")
class Blended(Attack):
    @dataclass(frozen=True)
    class Config(PoisonConfig):
        alpha: float = 0.2
        pattern_seed: int = 1

    def check(self, key: str) -> None:
        alpha = self.config.alpha
        require(0 < alpha <= 1, f"{key}.alpha", f"must be in (0, 1], got {alpha}")

    def pattern(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.config.pattern_seed)
        return torch.randint(0, 256, self.image_shape, generator=generator, dtype=torch.uint8)

    def apply_trigger(self, images: torch.Tensor) -> torch.Tensor:
        alpha = self.config.alpha
        blended = (1 - alpha) * images.float() + alpha * self.pattern().float()
        return blended.round_().clamp_(0, 255).to(torch.uint8)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"pattern": self.pattern()}
