"""Encoders cut from registry models, downstream heads, and the composed model a defense sees.

Every registry model ends in a layer called ``classifier`` that reads the flattened features
(``models/base.py``). An *encoder* is such a model with ``classifier`` replaced by the identity,
so it maps images in [0, 1] to that feature vector; the *composed* model puts a downstream head
back into the same slot. With a linear head the composed model therefore is the registry
architecture itself (same module names, same state-dict keys): ``load_model``, NAD's
``features.*`` layers and FST's / D3's ``classifier`` apply to it unchanged. An MLP head makes
``classifier`` a small ``nn.Sequential`` whose last linear layer is ``classifier.<last index>``.

The victim of the encoder-based paradigm trains only the head, with the encoder frozen, as
BadEncoder's downstream classifiers are trained (Jia, Liu, Gong 2022): the encoder's features of
the clean labelled data are computed once, in eval mode, and the head is fitted to them. Freezing
by construction means neither the encoder's weights nor its BatchNorm statistics can move.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.errors import TrainingDiverged
from backdoorlab.models.base import ModelSpec, build_model
from backdoorlab.progress import Progress
from backdoorlab.settings import check_positive, require
from backdoorlab.training.loop import EpochHook, predict_logits, steps_per_epoch
from backdoorlab.training.optim import Adam

HeadKind = Literal["linear", "mlp"]


@dataclass(frozen=True)
class HeadConfig:
    """The victim's downstream classifier and how it is trained on the frozen encoder.

    ``mlp`` with hidden widths (512, 256), Adam at LR 1e-4, batch 64 and 500 epochs is BadEncoder's
    downstream classifier; ``linear`` (the default) is SimCLR's linear evaluation protocol and keeps
    the composed model the registry architecture (module docstring). Epochs are cheap here: the
    head trains on precomputed features, not images."""

    kind: HeadKind = "linear"
    hidden: tuple[int, ...] = (512, 256)  # the MLP's hidden widths; unused by a linear head
    epochs: int = 500
    batch_size: int = 64
    lr: float = 1e-4

    def check(self, key: str) -> None:
        check_positive(self, key, "epochs", "batch_size", "lr")
        require(self.kind == "linear" or len(self.hidden) > 0, f"{key}.hidden",
                "an MLP head needs at least one hidden width")
        require(all(width > 0 for width in self.hidden), f"{key}.hidden",
                f"widths must be > 0, got {list(self.hidden)}")


def encoder_of(model: nn.Module) -> nn.Module:
    """A copy of ``model`` whose ``classifier`` is the identity: it outputs the flat features."""
    require(isinstance(getattr(model, "classifier", None), nn.Module), "model",
            f"{type(model).__name__} has no 'classifier' layer to cut off")
    encoder = copy.deepcopy(model)
    encoder.classifier = nn.Identity()
    return encoder


def build_encoder(spec: ModelSpec) -> nn.Module:
    """A freshly initialised encoder of the registry architecture ``spec`` names."""
    return encoder_of(build_model(spec))


@torch.no_grad()
def embedding_dim(encoder: nn.Module, image_shape: tuple[int, int, int]) -> int:
    """Length of the encoder's feature vector, from one forward pass of a blank image."""
    device = next(encoder.parameters()).device
    return predict_logits(encoder, torch.zeros((1, *image_shape), dtype=torch.uint8), device).shape[1]


def seeded_linear(in_features: int, out_features: int, generator: torch.Generator) -> nn.Linear:
    """A linear layer with PyTorch's default initialisation, drawn from ``generator`` (not the
    global RNG), so a head depends on its seed only."""
    layer = nn.Linear(in_features, out_features)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1.0 / math.sqrt(in_features)
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


def build_head(config: HeadConfig, in_features: int, num_classes: int, generator: torch.Generator) -> nn.Module:
    """A linear layer, or Linear-ReLU blocks of the hidden widths followed by a linear layer."""
    if config.kind == "linear":
        return seeded_linear(in_features, num_classes, generator)
    layers: list[nn.Module] = []
    width = in_features
    for hidden in config.hidden:
        layers += [seeded_linear(width, hidden, generator), nn.ReLU()]
        width = hidden
    return nn.Sequential(*layers, seeded_linear(width, num_classes, generator))


def compose(encoder: nn.Module, head: nn.Module) -> nn.Module:
    """One model, encoder then head: a copy of ``encoder`` with ``head`` (moved in, not copied)
    in its ``classifier`` slot."""
    model = copy.deepcopy(encoder)
    model.classifier = head
    return model


def train_head(encoder: nn.Module, data: ImageSet, num_classes: int, config: HeadConfig, *,
               generator: torch.Generator, device: torch.device, on_epoch: EpochHook | None = None,
               label: str = "head") -> nn.Module:
    """Fit a new head on the frozen ``encoder``'s features of ``data``; return the composed model.

    Cross-entropy, Adam, seeded shuffling, the last partial batch dropped as in ``fit``; no
    augmentation (the features are computed once, as BadEncoder's downstream training does)."""
    features = predict_logits(encoder, data.images, device)
    head = build_head(config, features.shape[1], num_classes, generator).to(device)
    optimizer = Adam(head.parameters(), lr=config.lr)
    batches = steps_per_epoch(len(features), config.batch_size)
    progress = Progress(label)
    head.train()
    for epoch in range(1, config.epochs + 1):
        order = torch.randperm(len(features), generator=generator)
        total = 0.0
        for b in range(batches):
            idx = order[b * config.batch_size:(b + 1) * config.batch_size]
            loss = F.cross_entropy(head(features[idx].to(device)), data.labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item()
        mean_loss = total / batches
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(f"{label}: loss became {mean_loss} at epoch {epoch} "
                                   f"(LR {config.lr:.4g}); lower the learning rate")
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)
        elif epoch == config.epochs:
            progress.log(f"{config.epochs} epochs on frozen features, final loss {mean_loss:.4f}")
    return compose(encoder, head)
