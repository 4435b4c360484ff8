"""BadNets (Gu et al., 2017): a small fixed patch stamped at a fixed position."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from backdoorlab.attacks.base import ATTACKS, Attack, PoisonConfig
from backdoorlab.settings import require

Corner = Literal["bottom_right", "bottom_left", "top_right", "top_left"]


@ATTACKS.register("badnets")
class BadNets(Attack):
    @dataclass(frozen=True)
    class Config(PoisonConfig):
        size: int = 3
        position: Corner = "bottom_right"
        margin: int = 0  # pixels between the patch and the image border
        # "white": all 255, the field's benchmark; "checkerboard": alternating 255/0, which stays
        # distinctive on data whose objects are themselves bright on black.
        pattern: Literal["white", "checkerboard"] = "white"

    def check(self, key: str) -> None:
        _, h, w = self.image_shape
        cfg = self.config
        require(cfg.size >= 1, f"{key}.size", f"must be >= 1, got {cfg.size}")
        require(cfg.margin >= 0, f"{key}.margin", f"must be >= 0, got {cfg.margin}")
        require(cfg.size + cfg.margin <= min(h, w), f"{key}.size",
                f"trigger of {cfg.size} px (+{cfg.margin} margin) does not fit a {h}x{w} image")

    def patch(self) -> torch.Tensor:
        size = self.config.size
        if self.config.pattern == "white":
            return torch.full((size, size), 255, dtype=torch.uint8)
        i = torch.arange(size)
        return (((i.view(-1, 1) + i.view(1, -1)) % 2 == 0).to(torch.uint8) * 255)

    def corner_slices(self) -> tuple[slice, slice]:
        _, h, w = self.image_shape
        size, margin = self.config.size, self.config.margin
        top = margin if self.config.position.startswith("top") else h - margin - size
        left = margin if self.config.position.endswith("left") else w - margin - size
        return slice(top, top + size), slice(left, left + size)

    def apply_trigger(self, images: torch.Tensor) -> torch.Tensor:
        rows, cols = self.corner_slices()
        stamped = images.clone()
        stamped[:, :, rows, cols] = self.patch()
        return stamped

    def state_tensors(self) -> dict[str, torch.Tensor]:
        mask = torch.zeros(self.image_shape[1:], dtype=torch.uint8)
        rows, cols = self.corner_slices()
        mask[rows, cols] = 1
        return {"mask": mask, "patch": self.patch()}
