"""WaNet (Nguyen & Tran, ICLR 2021): an imperceptible, smooth warping of the image as the trigger.

The warping field: ``k x k`` random control offsets (seeded by ``grid_seed``), normalised to a mean
magnitude of 1, upsampled bicubically to the image size, scaled by ``strength / H`` and
``grid_rescale``, and added to the identity sampling grid; an image is warped by
``grid_sample``. Defaults are the paper's (k 4, s 0.5, cross ratio 2).

Poisoned samples (``poison_rate`` of the training set, drawn once by the ``poison`` stage, so the
poison indices are exact for the report) are warped and relabelled. The *noise mode* is what makes
the backdoor specific to this one warp rather than to warping in general: on every batch, the
training hook warps ``cross_ratio * poison_rate`` of the batch with the field plus fresh random
noise (a new draw each batch, as in the original) and keeps their labels. The paper poisons and
draws noise samples per batch; drawing the poisoned set once is BackdoorBench's convention and
keeps the data-poisoning stage the same for every attack. The hook runs after the shared loop's
augmentation (the original warps before its augmentation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.attacks.base import ATTACKS, Attack, PoisonConfig
from backdoorlab.settings import require
from backdoorlab.training.loop import BatchHook


@ATTACKS.register("wanet")
class WaNet(Attack):
    @dataclass(frozen=True)
    class Config(PoisonConfig):
        control_points: int = 4  # k
        strength: float = 0.5  # s
        grid_rescale: float = 1.0
        cross_ratio: float = 2.0  # noise-mode samples per poisoned sample, per batch
        grid_seed: int = 0

    def check(self, key: str) -> None:
        cfg = self.config
        _, h, w = self.image_shape
        require(h == w, key, f"WaNet needs square images, got {h}x{w}")
        require(2 <= cfg.control_points <= h, f"{key}.control_points",
                f"must be in [2, {h}], got {cfg.control_points}")
        require(cfg.strength > 0, f"{key}.strength", f"must be > 0, got {cfg.strength}")
        require(cfg.grid_rescale > 0, f"{key}.grid_rescale", f"must be > 0, got {cfg.grid_rescale}")
        require(cfg.cross_ratio >= 0, f"{key}.cross_ratio", f"must be >= 0, got {cfg.cross_ratio}")
        require(cfg.poison_rate * (1 + cfg.cross_ratio) < 1, f"{key}.cross_ratio",
                f"poison_rate x (1 + cross_ratio) = {cfg.poison_rate * (1 + cfg.cross_ratio):.2f} "
                "leaves no clean samples in a batch")

    def warp_grid(self) -> torch.Tensor:
        """The backdoor's sampling grid, (1, H, W, 2) in [-1, 1]."""
        cfg = self.config
        size = self.image_shape[1]
        generator = torch.Generator().manual_seed(cfg.grid_seed)
        offsets = torch.rand(1, 2, cfg.control_points, cfg.control_points, generator=generator) * 2 - 1
        offsets = offsets / offsets.abs().mean()
        field = F.interpolate(offsets, size=(size, size), mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
        line = torch.linspace(-1, 1, size)
        rows, cols = torch.meshgrid(line, line, indexing="ij")
        identity = torch.stack((cols, rows), dim=2).unsqueeze(0)
        return (identity + cfg.strength * field / size * cfg.grid_rescale).clamp(-1, 1)

    def apply_trigger(self, images: torch.Tensor) -> torch.Tensor:
        warped = warp(images.float(), self.warp_grid().expand(len(images), -1, -1, -1))
        return warped.round_().clamp_(0, 255).to(torch.uint8)

    def training_hook(self, generator: torch.Generator, device: torch.device) -> BatchHook | None:
        if self.config.cross_ratio == 0:
            return None
        return NoiseMode(self.warp_grid().to(device), self.config.cross_ratio * self.config.poison_rate,
                         generator)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {"grid": self.warp_grid()[0].contiguous()}


def warp(images: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """Sample float images (N, C, H, W) at ``grid`` (N, H, W, 2)."""
    return F.grid_sample(images, grid, align_corners=True)


class NoiseMode:
    """Each batch: a random ``fraction`` of it warped by the backdoor grid plus fresh noise of up to
    one pixel, labels kept (the paper's noise mode)."""

    def __init__(self, grid: torch.Tensor, fraction: float, generator: torch.Generator) -> None:
        self.grid = grid
        self.fraction = fraction
        self.generator = generator

    def transform(self, model: nn.Module, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        n, _, size, _ = x.shape
        count = round(self.fraction * n)
        if count == 0:
            return x, y, None
        chosen = torch.randperm(n, generator=self.generator)[:count].to(x.device)
        noise = (torch.rand(count, size, size, 2, generator=self.generator).to(x.device) * 2 - 1) / size
        x = x.clone()
        x[chosen] = warp(x[chosen], (self.grid + noise).clamp(-1, 1))
        return x, y, None

    def after_step(self) -> None:
        """Nothing to step: the noise mode has no parameters."""
