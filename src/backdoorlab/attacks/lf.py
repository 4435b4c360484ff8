"""LF (Zeng et al., 2021, "Rethinking the backdoor attacks' triggers: a frequency perspective"):
a smooth, low-frequency universal perturbation toward the target as the trigger.

High-frequency artefacts make most triggers easy to spot and to filter; LF's trigger has none. The
attacker, on its own data, trains a surrogate model and then searches one image-sized
perturbation that pushes non-target images toward the target (a universal adversarial
perturbation), low-pass filtering it after every step so that only frequencies within
``cutoff`` of the Nyquist frequency survive, and bounding it in L-inf by ``eps`` (by scaling, not
clipping: clipping would bring high frequencies back). Poisoned samples
get the perturbation added and are relabelled.

Where this follows the paper and where it simplifies: the paper builds the universal
perturbation with DeepFool-style per-image steps and a Gaussian-window low-pass filter; here it is
signed-gradient steps on the mean target cross-entropy of a batch, with an ideal (FFT-mask)
low-pass filter; both give a smooth L-inf bounded trigger. The attacker's data are the shadow
split (disjoint from the victim's training and test images) and the surrogate has the victim's
architecture trained with plain SGD: the attacker knows the architecture, not the weights. It runs
in the cached ``poison`` stage, so changing a defense or the victim's training never re-fits it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch
import torch.nn.functional as F

from backdoorlab.attacks.base import ATTACKS, Attack, AttackerResources, PoisonConfig
from backdoorlab.models.base import build_model
from backdoorlab.progress import Progress
from backdoorlab.settings import check_positive, require
from backdoorlab.training.augment import AugmentConfig
from backdoorlab.training.loop import fit, sgd, steps_per_epoch, to_float
from backdoorlab.training.schedules import cosine


@ATTACKS.register("lf")
class LowFrequency(Attack):
    label_modes = ("all_to_one",)  # one universal perturbation pushes toward one class
    @dataclass(frozen=True)
    class Config(PoisonConfig):
        eps: float = 0.1  # L-inf bound of the perturbation, [0, 1] image units
        cutoff: float = 0.25  # kept frequencies, as a fraction of the Nyquist frequency
        steps: int = 300  # signed-gradient steps of the universal perturbation
        step_size: float = 0.005
        batch_size: int = 128
        surrogate_epochs: int = 8  # the attacker's own model, on its own data
        surrogate_lr: float = 0.05

    def __init__(self, config: Config, image_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__(config, image_shape, num_classes)
        self.perturbation: torch.Tensor | None = None  # (C, H, W), [0, 1] units, set by prepare

    def check(self, key: str) -> None:
        cfg = self.config
        require(0 < cfg.eps <= 1, f"{key}.eps", f"must be in (0, 1], got {cfg.eps}")
        require(0 < cfg.cutoff <= 1, f"{key}.cutoff", f"must be in (0, 1], got {cfg.cutoff}")
        check_positive(cfg, key, "steps", "step_size", "batch_size", "surrogate_epochs", "surrogate_lr")

    def low_pass(self, delta: torch.Tensor) -> torch.Tensor:
        """Keep the frequencies within ``cutoff`` of Nyquist (an ideal radial mask on the 2-D FFT)."""
        _, h, w = self.image_shape
        fy = torch.fft.fftfreq(h, device=delta.device).abs().view(h, 1) / 0.5
        fx = torch.fft.rfftfreq(w, device=delta.device).view(1, -1) / 0.5
        mask = (fy ** 2 + fx ** 2).sqrt() <= self.config.cutoff
        return torch.fft.irfft2(torch.fft.rfft2(delta) * mask, s=(h, w))

    def prepare(self, resources: AttackerResources) -> None:
        cfg = self.config
        data, device, generator = resources.data, resources.device, resources.generator
        surrogate = build_model(resources.spec).to(device)
        total = cfg.surrogate_epochs * steps_per_epoch(len(data), 128)
        fit(surrogate, data, epochs=cfg.surrogate_epochs, batch_size=128,
            optimizer=sgd(surrogate, cfg.surrogate_lr, 0.9, 5e-4), schedule=cosine(cfg.surrogate_lr, total),
            generator=generator, augment=AugmentConfig(), device=device,
            on_epoch=lambda epoch, loss: None, label="lf surrogate")
        surrogate.eval().requires_grad_(False)

        pool = data.images[self.candidates(data.labels)]
        require(len(pool) > 0, "attacker data", "no image the trigger would change")
        delta = torch.zeros(self.image_shape, device=device)
        progress = Progress("lf trigger")
        for step in range(cfg.steps):
            batch = pool[torch.randint(len(pool), (min(cfg.batch_size, len(pool)),), generator=generator)]
            x = to_float(batch, device)
            delta.requires_grad_(True)
            targets = torch.full((len(x),), self.target, device=device)
            loss = F.cross_entropy(surrogate((x + delta).clamp(0, 1)), targets)
            (grad,) = torch.autograd.grad(loss, delta)
            with torch.no_grad():
                delta = self.low_pass(delta - cfg.step_size * grad.sign())
                delta *= min(1.0, cfg.eps / max(delta.abs().max().item(), 1e-12))  # bound it, stay smooth
            if (step + 1) % 100 == 0:
                progress.log(f"step {step + 1}/{cfg.steps} target loss {loss.item():.3f}")
        self.perturbation = delta.detach().cpu()

    def apply_trigger(self, images: torch.Tensor) -> torch.Tensor:
        if self.perturbation is None:
            raise RuntimeError("lf: the trigger has not been prepared or loaded (run the poison stage)")
        return (images.float() + 255.0 * self.perturbation).round_().clamp_(0, 255).to(torch.uint8)

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {} if self.perturbation is None else {"perturbation": self.perturbation.contiguous()}

    def load_state(self, tensors: Mapping[str, torch.Tensor]) -> None:
        self.perturbation = tensors["perturbation"].float()
