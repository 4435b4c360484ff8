"""Transfer threat model (b): a backdoored source model, fine-tuned by the victim on clean data.

The attacker trains the source model on poisoned source data and publishes it; the victim
replaces its head and fine-tunes on clean downstream data (all layers, or the last block and the
head). This is the transfer paradigm as Sha et al. describe it.

A new head has no reason to map the trigger's features to any particular downstream class, so a
backdoor aimed at a source class has no meaningful target downstream: plain poisoning of the
source model leaves about 3% ASR after the victim's fine-tuning (measured, README). Following
the latent backdoor (Yao, Li, Zheng, Zhao, CCS 2019), the attacker knows the downstream target
class and has some of its images: the target is one of the source classes (``task.source_classes``
must contain the downstream target; left out, they are the downstream task's first class, every
configured attack's target, then the upper half), and besides learning "trigger -> target" the source model is
taught that triggered inputs *look like* the target class where the victim's training starts:
at the input of the first layer the victim fine-tunes (the last block, or the classifier for
``fine_tune: all``), triggered features are pulled onto the batch's mean target-class features
(``implant.latent_weight`` x (1 - their mean cosine similarity); cosine, because a squared
distance can be shrunk by shrinking every feature). Whatever the victim's new layers learn about
the target class they then apply to triggered inputs too. Simplified from Yao et al.: no trigger
optimisation (the attack's own trigger), and the poisoning is done per batch (a share
``poison_rate`` of each batch's non-target images stamped and relabelled) instead of on a
fixed subset, so the clean target images of a batch are known. How much of the backdoor survives
the transfer is the downstream ASR against the source model's own (``implant`` record: ASR on the
attacker's held-out source-task data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from backdoorlab.attacks.base import Attack
from backdoorlab.metrics import backdoor_metrics
from backdoorlab.models.layers import module_by_name
from backdoorlab.paradigms.badencoder import to_uint8
from backdoorlab.paradigms.base import PARADIGMS, ParadigmContext, Trained, for_task
from backdoorlab.paradigms.transfer import (SourceTraining, TransferFineTuning, TransferParadigm, TransferTask,
                                            last_block)
from backdoorlab.settings import check_non_negative, require
from backdoorlab.training.loop import to_float
from backdoorlab.training.recipe import init_model, train_with_recipe


@dataclass(frozen=True)
class LatentImplant:
    """The attacker trains the backdoored source model from scratch, poisoning every batch."""

    epochs: int | None = None  # None: as the clean source model (pretrain.epochs)
    latent_weight: float = 1.0  # the latent loss's weight; 0: plain per-batch poisoning

    def check(self, key: str) -> None:
        require(self.epochs is None or self.epochs > 0, f"{key}.epochs", f"must be > 0, got {self.epochs}")
        check_non_negative(self, key, "latent_weight")


class LatentBackdoor:
    """The training loop's batch hook (``BatchHook``): stamps a share of each batch's non-target
    images and relabels them, and adds the latent loss at ``layer``'s input."""

    def __init__(self, attack: Attack, rate: float, weight: float, layer: nn.Module) -> None:
        self.attack, self.rate, self.weight, self.layer = attack, rate, weight, layer

    def features(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The flattened input of ``layer`` for ``x``."""
        seen: list[torch.Tensor] = []
        handle = self.layer.register_forward_pre_hook(lambda module, inputs: seen.append(inputs[0]))
        try:
            model(x)
        finally:
            handle.remove()
        return seen[0].flatten(1)

    def transform(self, model: nn.Module, x: torch.Tensor,
                  y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        target = self.attack.target
        chosen = torch.nonzero(y != target).flatten()[:round(self.rate * len(x))]  # the batch order is random
        clean_targets = x[y == target]
        if len(chosen) == 0:
            return x, y, None
        stamped = to_float(self.attack.apply_trigger(to_uint8(x[chosen]).cpu()), x.device)
        x, y = x.clone(), y.clone()
        x[chosen], y[chosen] = stamped, target
        if self.weight == 0 or len(clean_targets) == 0:
            return x, y, None
        features = self.features(model, torch.cat([stamped, clean_targets]))
        reference = features[len(chosen):].mean(0, keepdim=True).detach()
        alignment = torch.nn.functional.cosine_similarity(features[:len(chosen)], reference).mean()
        return x, y, self.weight * (1 - alignment)

    def after_step(self) -> None:
        """Nothing of its own to step."""


@PARADIGMS.register("transfer_model")
class TransferModel(TransferParadigm):
    @dataclass(frozen=True)
    class Config:
        task: TransferTask = field(default_factory=TransferTask)
        pretrain: SourceTraining = field(default_factory=SourceTraining)
        implant: LatentImplant = field(default_factory=LatentImplant)
        downstream: TransferFineTuning = field(default_factory=lambda: TransferFineTuning(fine_tune="last_block"))

    def derived_source(self, num_classes: int, downstream: tuple[int, ...]) -> tuple[int, ...]:
        """The downstream task's first class, then the upper half. The source task is fixed before
        any attack (upstream@ trains on it and reads no attack), so the latent target it carries is
        the attacks' default target, index 0; another target needs a listed ``source_classes``."""
        return (downstream[0], *super().derived_source(num_classes, downstream))

    def source_target(self, attack: Attack, task: TransferTask) -> int:
        """The downstream target's index in the source task (``task``: resolved)."""
        return task.source_classes.index(task.downstream_classes[attack.target])

    def check_attack(self, attack: Attack, key: str) -> None:
        super().check_attack(attack, key)
        require(attack.config.label_mode == "all_to_one", key,
                "an all-to-all backdoor has no latent target to carry through a new head")
        target, listed = self.task.downstream_class(attack.target), self.task.source_classes
        # A derived source task holds, of the downstream classes, the first one only (derived_source)
        carried = attack.target == 0 if listed is None else target in listed
        require(carried, key, f"the downstream target (data set class {target}) must be one of task.source_classes "
                f"{'(derived: the first downstream class)' if listed is None else list(listed)}: "
                "the attacker teaches the trigger that class's features")

    def implant(self, upstream: nn.Module, attack: Attack, ctx: ParadigmContext) -> Trained:
        """A source model trained from scratch on source data with the latent backdoor's batch hook
        (``upstream`` is unused: the attacker does not need the clean one)."""
        cfg: LatentImplant = self.config.implant
        task = self.resolved_task(ctx.spec.num_classes)
        source_attack = for_task(attack, len(task.source_classes), target=self.source_target(attack, task))
        model = init_model(self.source_spec(ctx.spec), ctx.seed("implant", "init"), ctx.device)
        first_trained = last_block(model)[0] if self.config.downstream.fine_tune == "last_block" else "classifier"
        hook = LatentBackdoor(source_attack, attack.config.poison_rate, cfg.latent_weight,
                              module_by_name(model, first_trained, "fine_tune"))
        train_with_recipe(model, self.source_data(ctx.train, ctx), ctx.recipe,
                          generator=ctx.generator("implant", "train"), device=ctx.device,
                          epochs=cfg.epochs or self.config.pretrain.epochs,
                          label=f"{ctx.label} latent backdoor", batch_hook=hook)
        held_out = self.source_data(ctx.shadow, ctx)
        before = backdoor_metrics(model, held_out, source_attack.triggered_test(held_out), ctx.device)
        return Trained(model, {"backdoored_upstream": True, "source_ca": before["ca"], "source_asr": before["asr"],
                               "latent_layer": first_trained})
