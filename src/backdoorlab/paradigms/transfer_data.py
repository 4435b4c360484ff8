"""Transfer threat model (a): a clean source model, transferred by the victim onto poisoned data.

The attacker poisons the victim's downstream training set (as in the standalone paradigm); the
victim fine-tunes a clean model pre-trained on the source task. Sha et al. describe the transfer
paradigm as a *backdoored pre-trained* model fine-tuned downstream, which is threat model (b),
``transfer_model``; this instance asks the complementary question: does starting from a
pre-trained model change how a data-poisoning backdoor is learnt and removed?
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backdoorlab.paradigms.base import PARADIGMS
from backdoorlab.paradigms.transfer import SourceTraining, TransferFineTuning, TransferParadigm, TransferTask


@dataclass(frozen=True)
class NoImplant:
    """Nothing to set: the published source model is the clean one."""


@PARADIGMS.register("transfer_data")
class TransferData(TransferParadigm):
    @dataclass(frozen=True)
    class Config:
        task: TransferTask = field(default_factory=TransferTask)
        pretrain: SourceTraining = field(default_factory=SourceTraining)
        implant: NoImplant = field(default_factory=NoImplant)
        downstream: TransferFineTuning = field(default_factory=TransferFineTuning)

    poisons_downstream = True
