"""SimCLR (Chen, Kornblith, Norouzi, Hinton, ICML 2020): self-supervised pre-training of an encoder.

Every image of a batch is augmented twice; a projection head maps the encoder's features of all
2N views to a space where the NT-Xent loss pulls the two views of an image together and pushes
the other 2N - 2 views away. After pre-training the head is discarded: the encoder is what a
provider publishes, what downstream victims build on, and what BadEncoder attacks.

Follows the paper: two views by random resized crop (area 0.08-1 of the image, aspect ratio
3/4-4/3), horizontal flip and colour jitter (strength 0.4, applied with probability 0.8); a
one-hidden-layer MLP head with ReLU and 128-d output; NT-Xent on cosine similarities with
temperature 0.5 (the paper's CIFAR-10 value); a cosine LR decay; the two views of a batch go
through BatchNorm together. Adam at LR 1e-3, weight decay 1e-6, batch 256 and 1000 epochs are
how BadEncoder's clean CIFAR-10 encoders were pre-trained, and are the defaults here.

Simplified for two CPU cores: the encoder is a registry model (the small CNN), not a ResNet; Adam
instead of LARS at batch 4096, and no LR warm-up; the crop is one batched affine resampling
(bilinear; a box that would leave the image is clipped instead of re-drawn as torchvision does);
the jitter is brightness then contrast in a fixed order (grey-scale images have no saturation or
hue, and random grey-scale conversion does nothing to them); no Gaussian blur (the paper drops it
for CIFAR-10 too). Optional Gaussian pixel noise is not in the paper and off by default. The
epoch count is the knob params.yaml lowers for cost (issue 9: tens of epochs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.paradigms.composed import embedding_dim, seeded_linear
from backdoorlab.progress import Progress
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import EpochHook, fit, steps_per_epoch
from backdoorlab.training.optim import Adam
from backdoorlab.training.schedules import cosine


def uniform(n: int, low: float, high: float, generator: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=generator)


def random_resized_crop(x: torch.Tensor, scale: tuple[float, float], ratio: tuple[float, float], hflip: bool,
                        generator: torch.Generator) -> torch.Tensor:
    """Crop a random box of each image (area fraction in ``scale``, aspect ratio log-uniform in
    ``ratio``), resize it back to full size and flip half the images, in one ``grid_sample`` call."""
    n = x.shape[0]
    area = uniform(n, scale[0], scale[1], generator)
    aspect = uniform(n, math.log(ratio[0]), math.log(ratio[1]), generator).exp()
    # Half-extents in grid coordinates ([-1, 1] spans the image), i.e. fractions of the side.
    width = (area * aspect).sqrt().clamp(max=1.0)
    height = (area / aspect).sqrt().clamp(max=1.0)
    center_x = uniform(n, -1.0, 1.0, generator) * (1 - width)
    center_y = uniform(n, -1.0, 1.0, generator) * (1 - height)
    sign = torch.ones(n)
    if hflip:
        sign = torch.where(torch.rand(n, generator=generator) < 0.5, -1.0, 1.0)
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 2] = width * sign, center_x
    theta[:, 1, 1], theta[:, 1, 2] = height, center_y
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def color_jitter(x: torch.Tensor, brightness: float, contrast: float, p: float,
                 generator: torch.Generator) -> torch.Tensor:
    """Scale brightness, then contrast around each image's mean, by factors drawn uniformly from
    [1 - strength, 1 + strength], for a random fraction ``p`` of the images."""
    n = x.shape[0]
    applied = torch.rand(n, generator=generator) < p
    factors = []
    for strength in (brightness, contrast):
        factor = uniform(n, 1 - strength, 1 + strength, generator)
        factors.append(torch.where(applied, factor, 1.0).to(x).view(n, 1, 1, 1))
    x = (x * factors[0]).clamp(0, 1)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return ((x - mean) * factors[1] + mean).clamp(0, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """The normalised temperature-scaled cross-entropy of SimCLR: each of the 2N projections must
    pick its partner view out of the other 2N - 1, by cosine similarity / temperature."""
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = (z @ z.T / temperature).masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device),
                                                 float("-inf"))
    partners = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(logits, partners)


class SimCLR:
    @dataclass(frozen=True)
    class Config:
        epochs: int = 1000  # BadEncoder's clean encoders; params.yaml sets tens for two CPU cores
        batch_size: int = 256
        lr: float = 1e-3  # Adam
        weight_decay: float = 1e-6
        temperature: float = 0.5  # the paper's CIFAR-10 value
        projection_dim: int = 128
        projection_hidden: int = 512
        crop_scale: tuple[float, float] = (0.08, 1.0)  # area fraction of the random crop
        crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)  # its aspect ratio (width / height)
        hflip: bool = True
        jitter_p: float = 0.8
        brightness: float = 0.4
        contrast: float = 0.4
        noise_std: float = 0.0  # Gaussian pixel noise (not in the paper)

        def check(self, key: str) -> None:
            check_positive(self, key, "epochs", "batch_size", "lr", "temperature", "projection_dim",
                           "projection_hidden")
            check_non_negative(self, key, "weight_decay", "noise_std")
            low, high = self.crop_scale
            require(0 < low <= high <= 1, f"{key}.crop_scale", f"must satisfy 0 < low <= high <= 1, got "
                                                               f"{list(self.crop_scale)}")
            require(0 < self.crop_ratio[0] <= self.crop_ratio[1], f"{key}.crop_ratio",
                    f"must satisfy 0 < low <= high, got {list(self.crop_ratio)}")
            require(0 <= self.jitter_p <= 1, f"{key}.jitter_p", f"must be in [0, 1], got {self.jitter_p}")
            for name in ("brightness", "contrast"):
                value = getattr(self, name)
                require(0 <= value < 1, f"{key}.{name}", f"must be in [0, 1), got {value}")
            require(self.batch_size >= 2, f"{key}.batch_size", "NT-Xent needs at least two images per batch")

    def __init__(self, config: Config) -> None:
        self.config = config

    def view(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One random view of every image of a float batch (N, C, H, W) in [0, 1]."""
        cfg = self.config
        x = random_resized_crop(x, cfg.crop_scale, cfg.crop_ratio, cfg.hflip, generator)
        x = color_jitter(x, cfg.brightness, cfg.contrast, cfg.jitter_p, generator)
        if cfg.noise_std > 0:
            x = (x + cfg.noise_std * torch.randn(x.shape, generator=generator).to(x)).clamp(0, 1)
        return x

    def pretrain(self, encoder: nn.Module, images: torch.Tensor, *, generator: torch.Generator,
                 device: torch.device, on_epoch: EpochHook | None = None, label: str = "simclr") -> list[float]:
        """Pre-train ``encoder`` in place on unlabeled uint8 ``images`` (N, C, H, W); return the
        mean NT-Xent loss of every epoch. The projection head is built here and discarded."""
        cfg = self.config
        encoder.to(device)
        dim = embedding_dim(encoder, tuple(images.shape[1:]))
        projector = nn.Sequential(seeded_linear(dim, cfg.projection_hidden, generator), nn.ReLU(),
                                  seeded_linear(cfg.projection_hidden, cfg.projection_dim, generator))
        net = nn.Sequential(encoder, projector).to(device)
        unlabeled = ImageSet(images, torch.zeros(len(images), dtype=torch.long))
        losses: list[float] = []
        progress = Progress(label)

        def loss_fn(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            n = x.shape[0]
            z = model(torch.cat([self.view(x, generator), self.view(x, generator)]))
            return nt_xent(z[:n], z[n:], cfg.temperature)

        def record(epoch: int, loss: float) -> None:
            losses.append(loss)
            if on_epoch is not None:
                on_epoch(epoch, loss)
            else:
                progress.log(f"epoch {epoch}/{cfg.epochs} NT-Xent {loss:.4f}")

        total = cfg.epochs * steps_per_epoch(len(images), cfg.batch_size)
        fit(net, unlabeled, epochs=cfg.epochs, batch_size=cfg.batch_size,
            optimizer=Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay),
            schedule=cosine(cfg.lr, total), generator=generator, augment=None, device=device,
            loss_fn=loss_fn, on_epoch=record, label=label)
        return losses

