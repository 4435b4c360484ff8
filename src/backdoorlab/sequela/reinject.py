"""Backdoor re-injection: how few poisoned samples bring a removed backdoor back.

An attacker who can slip ``k`` poisoned samples (the cell's trigger stamped on images it changes,
relabelled to their attack label) into the defender's clean data fine-tunes the model on the mix for a few
epochs; the ASR reached, against ``k``, measures how close the defended model still sits to a
backdoored solution. The same run on a model trained without poison (the ``reinject_baseline``
stage) is the yardstick: a defense whose model regains the backdoor faster leaves sequela.

The poisoned samples are nested (those for ``k = 20`` include those for ``k = 5``) and, with the
stage's per-instance seed, identical for every defense of one attack and for the baseline.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from backdoorlab.data.base import ImageSet
from backdoorlab.sequela.base import SEQUELA, SequelaAttack, SequelaContext
from backdoorlab.settings import check_non_negative, check_positive, require
from backdoorlab.training.loop import Precision, fit, predict_logits, sgd
from backdoorlab.training.schedules import constant


@SEQUELA.register("reinject")
class Reinjection(SequelaAttack):
    @dataclass(frozen=True)
    class Config:
        poisons: list[int] = (5, 20, 50)  # type: ignore[assignment]  # k, poisoned samples mixed in
        epochs: int = 3
        batch_size: int = 64
        lr: float = 0.05  # constant: a plain attacker's fine-tuning
        momentum: float = 0.9
        weight_decay: float = 5e-4
        precision: Precision = "auto"

        def check(self, key: str) -> None:
            require(len(self.poisons) > 0 and all(k > 0 for k in self.poisons), f"{key}.poisons",
                    "must be a non-empty list of positive counts")
            check_positive(self, key, "epochs", "batch_size", "lr")
            check_non_negative(self, key, "momentum", "weight_decay")

    def poisoned_samples(self, ctx: SequelaContext) -> ImageSet:
        """``max(poisons)`` triggered, relabelled copies of the defender's images the trigger
        changes (non-target ones, all-to-one), in a seeded order (a prefix of it is the set for a
        smaller k)."""
        attack, data = ctx.attack, ctx.defense_data
        candidates = attack.candidates(data.labels)
        count = max(self.config.poisons)
        require(count <= len(candidates), f"{self.key}.poisons",
                f"{count} poisoned samples asked for, but the defense subset has {len(candidates)} candidates")
        chosen = candidates[torch.randperm(len(candidates), generator=ctx.generator)[:count]]
        return ImageSet(attack.apply_trigger(data.images[chosen]), attack.attack_labels(data.labels[chosen]))

    def run(self, model: nn.Module, ctx: SequelaContext) -> dict[str, float]:
        cfg = self.config
        poisoned = self.poisoned_samples(ctx)
        results: dict[str, float] = {}
        for k in sorted(cfg.poisons):
            data = ImageSet(torch.cat([ctx.defense_data.images, poisoned.images[:k]]),
                            torch.cat([ctx.defense_data.labels, poisoned.labels[:k]]))
            tuned = copy.deepcopy(model)
            fit(tuned, data, epochs=cfg.epochs, batch_size=cfg.batch_size,
                optimizer=sgd(tuned, cfg.lr, cfg.momentum, cfg.weight_decay), schedule=constant(cfg.lr),
                generator=ctx.generator, augment=None, device=ctx.device, precision=cfg.precision,
                on_epoch=lambda epoch, loss: None, label=ctx.label)
            predicted = predict_logits(tuned, ctx.triggered_test.images, ctx.device).argmax(1)
            results[f"asr@{k}"] = (predicted == ctx.triggered_test.attack_labels).float().mean().item()
        return results
