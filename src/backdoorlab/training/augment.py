"""Batch-level augmentation with tensor ops: random crop with zero padding, horizontal flip.

Applied to a whole batch at once (one gather), which is what keeps a CPU epoch fast; a per-sample
PIL transform pipeline would cost more than the model itself at this size.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from backdoorlab.settings import check_non_negative


@dataclass(frozen=True)
class AugmentConfig:
    crop_padding: int = 2
    hflip: bool = True

    def check(self, key: str) -> None:
        check_non_negative(self, key, "crop_padding")


def augment_batch(x: torch.Tensor, config: AugmentConfig, generator: torch.Generator) -> torch.Tensor:
    """Randomly crop (after zero padding) and flip each image of a float batch (N, C, H, W)."""
    n, _, h, w = x.shape
    pad = config.crop_padding
    if pad > 0:
        padded = F.pad(x, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(x.device)
        dx = torch.randint(0, 2 * pad + 1, (n, 1), generator=generator).to(x.device)
        rows = (dy + torch.arange(h, device=x.device)).view(n, 1, h, 1).expand(-1, x.shape[1], h, w + 2 * pad)
        x = padded.gather(2, rows)
        cols = (dx + torch.arange(w, device=x.device)).view(n, 1, 1, w).expand(-1, x.shape[1], h, w)
        x = x.gather(3, cols)
    if config.hflip:
        flip = (torch.rand(n, generator=generator) < 0.5).to(x.device).view(n, 1, 1, 1)
        x = torch.where(flip, x.flip(3), x)
    return x
