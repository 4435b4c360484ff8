"""The encoder-based paradigm: SimCLR pre-training, BadEncoder, a downstream head on the encoder.

A provider pre-trains an image encoder without labels (:mod:`~backdoorlab.paradigms.simclr`) on
unlabeled images of the victim's distribution; the attacker fine-tunes a copy with BadEncoder
(:mod:`~backdoorlab.paradigms.badencoder`) on its own unlabeled data (the shadow split) and a few
reference images of the target class (from the same split); the victim trains a linear head on
the frozen encoder with its clean labelled data (:func:`~backdoorlab.paradigms.composed.train_head`).
The deployed model is encoder plus head: with a linear head exactly the registry architecture,
which is what the defenses see (a defender who holds it fine-tunes every layer, as the paper's
defenses do). The clean counterpart is the same head on the clean encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from backdoorlab.attacks.base import Attack
from backdoorlab.data.base import ImageSet
from backdoorlab.models.base import ModelSpec
from backdoorlab.paradigms.badencoder import BadEncoder, pick_references
from backdoorlab.paradigms.base import PARADIGMS, Paradigm, ParadigmContext, Trained
from backdoorlab.paradigms.composed import HeadConfig, build_encoder, train_head
from backdoorlab.paradigms.simclr import SimCLR
from backdoorlab.settings import require
from backdoorlab.training.loop import predict_logits


@dataclass(frozen=True)
class EveryClass:
    """Nothing to set: the downstream task is the data set's own."""


@dataclass(frozen=True)
class Pretraining(SimCLR.Config):
    images: int = 4000  # unlabeled images, a seeded sample of the training split

    def check(self, key: str) -> None:
        super().check(key)
        require(self.images >= self.batch_size, f"{key}.images",
                f"must be at least one batch ({self.batch_size}), got {self.images}")


@dataclass(frozen=True)
class Implanting(BadEncoder.Config):
    references: int = 3  # reference images of the target class, from the attacker's data


@dataclass(frozen=True)
class LinearHead(HeadConfig):
    def check(self, key: str) -> None:
        super().check(key)
        require(self.kind == "linear", f"{key}.kind",
                "the DAG deploys encoder + linear head, the registry architecture every defense and stage "
                "rebuilds from model.arch; an MLP head is library-only (backdoorlab.paradigms.composed)")


@PARADIGMS.register("encoder")
class EncoderParadigm(Paradigm):
    @dataclass(frozen=True)
    class Config:
        task: EveryClass = field(default_factory=EveryClass)
        pretrain: Pretraining = field(default_factory=Pretraining)
        implant: Implanting = field(default_factory=Implanting)
        downstream: LinearHead = field(default_factory=LinearHead)

    def upstream_model(self, spec: ModelSpec) -> nn.Module:
        return build_encoder(spec)

    def pretrain(self, ctx: ParadigmContext) -> Trained:
        cfg: Pretraining = self.config.pretrain
        require(cfg.images <= len(ctx.train), "pretrain.images",
                f"{cfg.images} asked for, the training split has {len(ctx.train)}")
        chosen = torch.randperm(len(ctx.train), generator=ctx.generator("pretrain", "images"))[:cfg.images]
        torch.manual_seed(ctx.seed("pretrain", "init"))
        encoder = build_encoder(ctx.spec)
        losses = SimCLR(cfg).pretrain(encoder, ctx.train.images[chosen], generator=ctx.generator("pretrain"),
                                      device=ctx.device, label=f"{ctx.label} simclr")
        return Trained(encoder.eval(), {"nt_xent_first": losses[0], "nt_xent_last": losses[-1]})

    def implant(self, upstream: nn.Module, attack: Attack, ctx: ParadigmContext) -> Trained:
        cfg: Implanting = self.config.implant
        references = pick_references(ctx.shadow, attack.target, cfg.references, ctx.generator("implant", "references"))
        backdoored = BadEncoder(cfg).backdoor(upstream, ctx.shadow.images, references, attack,
                                              generator=ctx.generator("implant"), device=ctx.device,
                                              label=f"{ctx.label} badencoder")
        return Trained(backdoored, {"backdoored_upstream": True, **alignment(upstream, backdoored, ctx.shadow, attack,
                                                                             references, ctx.device)})

    def fine_tune(self, upstream: nn.Module, data: ImageSet, task: ModelSpec, ctx: ParadigmContext) -> nn.Module:
        return train_head(upstream, data, task.num_classes, self.config.downstream, generator=ctx.generator("head"),
                          device=ctx.device, label=f"{ctx.label} head")


@torch.no_grad()
def alignment(clean: nn.Module, backdoored: nn.Module, data: ImageSet, attack: Attack, references: torch.Tensor,
              device: torch.device, count: int = 256) -> dict[str, float]:
    """BadEncoder's two aims, measured on ``count`` of the attacker's images: the mean cosine
    similarity of triggered embeddings to the references' (clean encoder, then backdoored), and of
    each clean image's backdoored embedding to its clean one."""
    images = data.images[:count]
    triggered = attack.apply_trigger(images)

    def embed(model: nn.Module, x: torch.Tensor) -> torch.Tensor:  # an encoder's "logits" are its features
        return torch.nn.functional.normalize(predict_logits(model.eval(), x, device), dim=1)

    def to_references(model: nn.Module) -> float:
        return float((embed(model, triggered) @ embed(model, references).T).mean())

    return {"trigger_to_reference_clean": to_references(clean), "trigger_to_reference": to_references(backdoored),
            "clean_embedding_kept": float((embed(backdoored, images) * embed(clean, images)).sum(1).mean())}
