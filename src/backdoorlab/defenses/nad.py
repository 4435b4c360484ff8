"""Neural Attention Distillation (NAD; Li, Lyu, Koren, Lyu, Li, Ma, ICLR 2021).

A teacher is the backdoored model briefly fine-tuned on the clean subset: its backdoor is
weakened, though not gone. The student (the backdoored model itself) is then fine-tuned with
cross-entropy plus ``beta`` times the distance between its attention maps and the teacher's at
chosen layers. Matching attention, not logits, transfers *where* the teacher looks, which erases
the student's trigger-driven activations better than a few more epochs of fine-tuning.

Attention map of an activation ``A`` (N, C, H, W): ``mean_c |A_c|^p``, flattened and
L2-normalised per sample; the distance is the mean squared difference of the two maps, as in the
authors' code (so ``beta`` is large: the maps have unit norm over H * W entries).
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.models.layers import ActivationTap
from backdoorlab.settings import check_non_negative, check_positive, require


def attention_map(activation: torch.Tensor, p: float) -> torch.Tensor:
    """``mean_c |A_c|^p`` per sample, flattened and L2-normalised: (N, H * W)."""
    return F.normalize(activation.abs().pow(p).mean(1).flatten(1), dim=1)


def attention_distance(student: torch.Tensor, teacher: torch.Tensor, p: float) -> torch.Tensor:
    return (attention_map(student, p) - attention_map(teacher, p)).pow(2).mean()


@DEFENSES.register("nad")
class NeuralAttentionDistillation(Defense):
    # A larger attention weight distils harder.
    strength = Strength("beta", (300.0, 1000.0, 3000.0, 5000.0, 10000.0))

    @dataclass(frozen=True)
    class Config:
        # Where attention is matched; empty: the model's own ``attention_layers`` (the paper's
        # residual groups for the ResNets, the 2nd and 3rd conv blocks of small_cnn), so one
        # instance serves every architecture. Names as ``model.named_modules()`` gives them.
        layers: list[str] = field(default_factory=list)
        beta: float = 5000.0  # the paper's CIFAR-10 value
        p: float = 2.0
        teacher_epochs: int = 10
        epochs: int = 20
        batch_size: int = 64
        lr: float = 0.01
        momentum: float = 0.9
        weight_decay: float = 1e-4
        augment: bool = True

        def check(self, key: str) -> None:
            check_non_negative(self, key, "beta", "teacher_epochs", "epochs", "momentum", "weight_decay")
            check_positive(self, key, "p", "batch_size", "lr")

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        cfg = self.config
        tune = functools.partial(finetune, ctx=ctx, batch_size=cfg.batch_size, lr=cfg.lr,
                                 momentum=cfg.momentum, weight_decay=cfg.weight_decay, augment=cfg.augment)
        teacher = copy.deepcopy(model)
        tune(teacher, epochs=cfg.teacher_epochs)
        teacher.eval()

        layers = cfg.layers or list(getattr(model, "attention_layers", ()))
        require(bool(layers), "nad.layers", f"{type(model).__name__} declares no attention_layers: name the layers")
        with (ActivationTap(model, layers, "nad.layers") as student_maps,
              ActivationTap(teacher, layers, "nad.layers") as teacher_maps):

            def loss_fn(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
                with torch.no_grad():
                    teacher(x)
                loss = F.cross_entropy(net(x), y)
                for name in layers:
                    loss = loss + cfg.beta * attention_distance(student_maps.outputs[name],
                                                                teacher_maps.outputs[name], cfg.p)
                return loss

            tune(model, epochs=cfg.epochs, loss_fn=loss_fn)
        return DefenseOutcome(model)
