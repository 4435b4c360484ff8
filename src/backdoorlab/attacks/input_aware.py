"""Input-aware dynamic backdoor (Nguyen & Tran, NeurIPS 2020): a trigger generated per image.

Two small encoder-decoder networks turn an image x into a pattern G(x) (C channels) and a mask
M(x) (one channel, broadcast over the colour channels); the triggered image is

    x' = x + (G(x) - x) * M(x)          (floats in [0, 1], so x' stays in [0, 1])

and is classified as the attack label. The attack controls training, as in the paper:

1. **Mask pre-training** (:meth:`InputAware.prepare`, in the cached ``poison`` stage, on the
   attacker's own data): the mask generator alone minimises
   ``lambda_div * L_div + lambda_norm * L_norm``, where the diversity loss
   ``L_div = mean_i ||x_i - x_j|| / (||M(x_i) - M(x_j)|| + eps)`` (root-mean-square distances, j
   another image of the batch) keeps masks of different images apart, and the norm loss
   ``L_norm = mean_i max(0, mean(M(x_i)) - mask_density)`` keeps each mask to about
   ``mask_density`` of the pixels. The mask generator then stays frozen.
2. **Joint training** (:meth:`InputAware.training_hook`, in the shared training loop): in every
   augmented batch the first ``round(poison_rate * n)`` samples get their own trigger and the attack
   label (backdoor mode), the next ``round(cross_ratio * n)`` get the trigger (pattern and mask) of
   another image of the batch and keep their label (cross-trigger mode: a trigger is not reusable),
   and the rest stay clean. The pattern generator learns from the classifier's cross-entropy
   through the generated images plus ``lambda_div`` times its own diversity loss, with Adam
   (``generator_lr`` 0.01, betas (0.5, 0.9), as in the authors' release), stepped right after the
   classifier. ``apply_trigger`` stamps with both generators in eval mode.

Where this follows the paper: both generators, the two losses and their weights (lambda_div 1,
lambda_norm 100, mask density 0.032), rho_b = rho_c = 0.1 as fractions of the batch, the mask
generator pre-trained first and frozen during joint training, Adam at 0.01 for the generators,
backdoor samples drawn per batch rather than stored in the data set (so :meth:`poison` returns the
training set unchanged, with no poisoned indices), all-to-one and all-to-all labels.

Where it simplifies:

- **Sizes**: each generator is conv(w, stride 2) - conv(2w, stride 2) - conv(2w) - up - conv(w) -
  up - conv(out), BatchNorm and ReLU after every conv but the last (``width`` w = 8 by default), far
  smaller than the paper's and with no full-resolution layer but the output, so a batch costs
  about what the victim's small CNN costs; a side that is not a multiple of 4 is padded, then
  the output cropped back.
- **Epochs**: the mask generator is pre-trained for ``mask_epochs`` = 10 epochs of the attacker's
  own data (the shadow split; the paper: 25 epochs of the training set), enough on Fashion-MNIST
  for masks of about the asked density that differ between images. Joint training lasts as long
  as the pipeline's recipe (``train.epochs``; the release trains 600 epochs), so the backdoor is
  weaker than the paper's and cross-trigger images are not all rejected.
- **Optimiser**: the generators' learning rate is constant (the release divides it by 10 at
  epochs 10 and 20 for the mask, 200-500 for the pattern; the hook does not see the victim's
  schedule); the victim keeps the pipeline's SGD recipe (the release: SGD at 0.01, steps at 100-400).
- **Norm loss**: the hinge is on each mask's mean, its density, which is what ``mask_density``
  names; the release puts it on every pixel, an L1-like pressure that leaves masks sparser than
  asked.
- **Mask output**: M(x) = sigmoid(20 tanh(raw)), a near-binary map in the spirit of the
  release's steep threshold.
- **Cross-trigger partners** come from the same batch (the backdoor and cross samples, paired by
  a cyclic shift of random length; one generator pass serves both modes and the diversity loss),
  not from a second shuffled loader.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.attacks.base import (
    ATTACKS,
    Attack,
    AttackerResources,
    PoisonConfig,
    PoisonResult,
)
from backdoorlab.data.base import ImageSet
from backdoorlab.errors import DataError
from backdoorlab.settings import require
from backdoorlab.training.loop import steps_per_epoch, to_float

EPSILON = 1e-7
MASK_SHARPNESS = 20.0
ADAM_BETAS = (0.5, 0.9)
INIT_SEED = 0  # weights of a freshly built instance (prepare or load_state replaces them)


def _block(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))


class EncoderDecoder(nn.Module):
    """A small conv encoder-decoder: two stride-2 convolutions down, two 2x nearest upsamplings
    back (no full-resolution layer but the last, which keeps it cheap on a CPU). Returns raw
    (unbounded) maps of ``out_channels`` at the input's size."""

    def __init__(self, in_channels: int, out_channels: int, width: int) -> None:
        super().__init__()
        w = width
        self.body = nn.Sequential(
            _block(in_channels, w, stride=2), _block(w, 2 * w, stride=2), _block(2 * w, 2 * w),
            nn.Upsample(scale_factor=2, mode="nearest"), _block(2 * w, w),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(w, out_channels, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        pad_h, pad_w = -h % 4, -w % 4
        if pad_h or pad_w:
            x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
        return self.body(x)[..., :h, :w]


class PatternGenerator(EncoderDecoder):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(super().forward(x))


class MaskGenerator(EncoderDecoder):
    def __init__(self, in_channels: int, width: int) -> None:
        super().__init__(in_channels, 1, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(MASK_SHARPNESS * torch.tanh(super().forward(x)))


def rms_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-sample root-mean-square distance of two batches."""
    return (a - b).pow(2).flatten(1).mean(1).sqrt()


def diversity_loss(images: torch.Tensor, partners: torch.Tensor, outputs: torch.Tensor,
                   partner_outputs: torch.Tensor) -> torch.Tensor:
    """The paper's L_div: different inputs must give outputs at least as far apart as they are."""
    return (rms_distance(images, partners) / (rms_distance(outputs, partner_outputs) + EPSILON)).mean()


def blend(images: torch.Tensor, patterns: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    return images + (patterns - images) * masks


def _random_shift(n: int, generator: torch.Generator) -> int:
    """A cyclic shift in [1, n - 1]: rolling by it pairs every sample with another one."""
    return int(torch.randint(1, n, (1,), generator=generator).item())


@ATTACKS.register("input_aware")
class InputAware(Attack):
    @dataclass(frozen=True)
    class Config(PoisonConfig):
        # poison_rate is the paper's rho_b: the fraction of every batch in backdoor mode.
        cross_ratio: float = 0.1  # rho_c: the fraction of every batch in cross-trigger mode
        lambda_div: float = 1.0
        lambda_norm: float = 100.0
        mask_density: float = 0.032
        generator_lr: float = 0.01  # Adam, both generators
        mask_epochs: int = 10  # the paper: 25 (over the whole training set)
        mask_batch_size: int = 128
        width: int = 8  # channels of the generators' first layer

    def __init__(self, config: Config, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        if config.width >= 1:  # else check() reports the width
            self._build(INIT_SEED)

    def _build(self, seed: int) -> None:
        channels = self.image_shape[0]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.pattern = PatternGenerator(channels, channels, self.config.width)
            self.mask = MaskGenerator(channels, self.config.width)
        self.pattern.eval()
        self.mask.eval()

    def check(self, key: str) -> None:
        cfg = self.config
        require(0 <= cfg.cross_ratio < 1, f"{key}.cross_ratio", f"must be in [0, 1), got {cfg.cross_ratio}")
        require(cfg.poison_rate + cfg.cross_ratio < 1, f"{key}.cross_ratio",
                f"poison_rate + cross_ratio must leave clean samples in a batch (< 1), got "
                f"{cfg.poison_rate} + {cfg.cross_ratio}")
        require(cfg.lambda_div >= 0, f"{key}.lambda_div", f"must be >= 0, got {cfg.lambda_div}")
        require(cfg.lambda_norm >= 0, f"{key}.lambda_norm", f"must be >= 0, got {cfg.lambda_norm}")
        require(0 < cfg.mask_density < 1, f"{key}.mask_density", f"must be in (0, 1), got {cfg.mask_density}")
        require(cfg.generator_lr > 0, f"{key}.generator_lr", f"must be > 0, got {cfg.generator_lr}")
        require(cfg.mask_epochs >= 1, f"{key}.mask_epochs", f"must be >= 1, got {cfg.mask_epochs}")
        require(cfg.mask_batch_size >= 2, f"{key}.mask_batch_size",
                f"must be >= 2 (the diversity loss pairs images), got {cfg.mask_batch_size}")
        require(cfg.width >= 1, f"{key}.width", f"must be >= 1, got {cfg.width}")

    # -- the trigger ---------------------------------------------------------------------------

    @property
    def device(self) -> torch.device:
        return next(self.pattern.parameters()).device

    @torch.no_grad()
    def stamp(self, images: torch.Tensor, sources: torch.Tensor | None = None,
              batch_size: int = 512) -> torch.Tensor:
        """Stamp on uint8 ``images`` the trigger (pattern and mask) generated from ``sources``
        (default: the images themselves; another image's trigger is the paper's cross-trigger
        test). Eval mode, returns uint8 on the CPU."""
        sources = images if sources is None else sources
        if sources.shape != images.shape:
            raise ValueError("sources must match the images' shape")
        self.pattern.eval()
        self.mask.eval()
        device = self.device
        out = []
        for i in range(0, len(images), batch_size):
            x = to_float(images[i:i + batch_size], device)
            s = x if sources is images else to_float(sources[i:i + batch_size], device)
            stamped = blend(x, self.pattern(s), self.mask(s))
            out.append(stamped.mul_(255).round_().clamp_(0, 255).to(torch.uint8).cpu())
        return torch.cat(out) if out else images.clone()

    def apply_trigger(self, images: torch.Tensor) -> torch.Tensor:
        return self.stamp(images)

    @torch.no_grad()
    def masks(self, images: torch.Tensor) -> torch.Tensor:
        """The (N, 1, H, W) float masks of uint8 images, in eval mode, on the CPU."""
        self.mask.eval()
        out = [self.mask(to_float(images[i:i + 512], self.device)).cpu() for i in range(0, len(images), 512)]
        return torch.cat(out) if out else torch.empty(0, 1, *images.shape[2:])

    # -- mask pre-training (poison stage) ------------------------------------------------------

    def prepare(self, resources: AttackerResources) -> None:
        """Fresh generators from the attacker's seed stream, then pre-train the mask generator."""
        cfg = self.config
        self._build(int(torch.randint(0, 2**62, (1,), generator=resources.generator).item()))
        device = resources.device
        self.pattern.to(device)
        self.mask.to(device)
        data = resources.data
        batch = min(cfg.mask_batch_size, len(data))
        require(batch >= 2, "data.shadow_size", f"input_aware needs at least 2 attacker images, got {len(data)}")
        optimizer = torch.optim.Adam(self.mask.parameters(), lr=cfg.generator_lr, betas=ADAM_BETAS)
        self.mask.train()
        for _ in range(cfg.mask_epochs):
            order = torch.randperm(len(data), generator=resources.generator)
            for b in range(steps_per_epoch(len(data), batch)):
                x = to_float(data.images[order[b * batch:(b + 1) * batch]], device)
                shift = _random_shift(len(x), resources.generator)
                m = self.mask(x)
                div = diversity_loss(x, x.roll(shift, 0), m, m.roll(shift, 0))
                norm = F.relu(m.flatten(1).mean(1) - cfg.mask_density).mean()
                loss = cfg.lambda_div * div + cfg.lambda_norm * norm
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.mask.eval()
        self.mask.requires_grad_(False)

    def poison(self, train: ImageSet, generator: torch.Generator) -> PoisonResult:
        """Nothing is stamped in advance: backdoor samples are drawn per batch by the hook."""
        return PoisonResult(train, torch.empty(0, dtype=torch.int64))

    # -- joint training (train stage) ----------------------------------------------------------

    def training_hook(self, generator: torch.Generator, device: torch.device) -> InputAwareHook:
        return InputAwareHook(self, generator, device)

    # -- state ---------------------------------------------------------------------------------

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {**{f"pattern.{k}": v.detach().cpu() for k, v in self.pattern.state_dict().items()},
                **{f"mask.{k}": v.detach().cpu() for k, v in self.mask.state_dict().items()}}

    def load_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        for prefix, net in (("pattern.", self.pattern), ("mask.", self.mask)):
            state = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
            try:
                net.load_state_dict(state)
            except RuntimeError as error:
                first = str(error).splitlines()[0]
                raise DataError(f"input_aware trigger state does not fit the generators "
                                f"(width {self.config.width}, image shape {self.image_shape}): {first}") from None
        self.pattern.eval()
        self.mask.eval()


class InputAwareHook:
    """The per-batch part of the attack: backdoor, cross-trigger and clean samples, and the
    pattern generator's update (see the module docstring)."""

    def __init__(self, attack: InputAware, generator: torch.Generator, device: torch.device) -> None:
        self.attack = attack
        self.generator = generator
        attack.pattern.to(device)
        attack.mask.to(device).eval().requires_grad_(False)
        attack.pattern.requires_grad_(True)
        self.optimizer = torch.optim.Adam(attack.pattern.parameters(), lr=attack.config.generator_lr,
                                          betas=ADAM_BETAS)

    def counts(self, n: int) -> tuple[int, int]:
        """(backdoor, cross-trigger) samples in a batch of ``n``."""
        cfg = self.attack.config
        backdoor = min(n, round(cfg.poison_rate * n))
        cross = min(n - backdoor, round(cfg.cross_ratio * n))
        return backdoor, cross

    def transform(self, model: nn.Module, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        attack = self.attack
        self.optimizer.zero_grad(set_to_none=True)
        n = x.shape[0]
        backdoor, cross = self.counts(n)
        # Triggered samples and their partners come from the first `pool` images of the batch.
        pool = min(n, max(backdoor + cross, 2))
        if pool < 2:  # a single image has no partner: no cross-trigger samples, no diversity
            cross, pool = 0, backdoor
        if pool == 0:
            return x, y, None
        attack.pattern.train()
        source = x[:pool]
        patterns = attack.pattern(source)
        with torch.no_grad():
            masks = attack.mask(source)
        parts = [blend(x[:backdoor], patterns[:backdoor], masks[:backdoor])]
        extra = None
        if pool >= 2:
            shift = _random_shift(pool, self.generator)
            partner_x, partner_p, partner_m = source.roll(shift, 0), patterns.roll(shift, 0), masks.roll(shift, 0)
            cut = slice(backdoor, backdoor + cross)
            parts.append(blend(x[cut], partner_p[cut], partner_m[cut]))
            extra = attack.config.lambda_div * diversity_loss(source, partner_x, patterns, partner_p)
        parts.append(x[backdoor + cross:])
        labels = torch.cat([attack.attack_labels(y[:backdoor]), y[backdoor:]])
        return torch.cat(parts), labels, extra

    def after_step(self) -> None:
        self.optimizer.step()
