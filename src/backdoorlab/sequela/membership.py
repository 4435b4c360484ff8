"""What every membership-inference attack shares: per-sample scores on the four splits, and the
numbers that follow from them (AUC, balanced accuracy, TPR at low FPR)."""

from __future__ import annotations

from torch import nn

from backdoorlab.errors import DataError
from backdoorlab.sequela.base import Measurement, MembershipScores, ReferenceModels, SequelaAttack, SequelaContext
from backdoorlab.sequela.scores import membership_report


def require_reference(ctx: SequelaContext, key: str) -> ReferenceModels:
    """The attacker's shadow models, or a one-line error naming the instance that needs them."""
    if ctx.reference is None or len(ctx.reference) == 0:
        raise DataError(f"{key}: no shadow models (run the `shadow` stage first)")
    return ctx.reference


class MembershipAttack(SequelaAttack):
    """Base class: a subclass's ``measure`` computes per-sample scores (``{score name: scores}``, the
    name empty for an attack with one score) and returns ``measurement(scores)``; the stage keeps
    them so the report can resample them for standard errors."""

    def fprs(self) -> list[float]:
        """The false-positive rates at which the TPR is reported."""
        return [self.config.fpr]

    def report(self, scores: dict[str, MembershipScores]) -> dict[str, float]:
        metrics = {}
        for name, s in scores.items():
            numbers = membership_report(s.members, s.non_members, s.calibration_members, s.calibration_non_members,
                                        self.fprs())
            metrics.update({f"{name}.{k}" if name else k: v for k, v in numbers.items()})
        return metrics

    def measurement(self, scores: dict[str, MembershipScores], **extra: float) -> Measurement:
        """The numbers of ``scores`` (and any ``extra`` ones), with the scores kept."""
        return Measurement({**self.report(scores), **extra}, scores)

    def run(self, model: nn.Module, ctx: SequelaContext) -> dict[str, float]:
        return self.measure(model, ctx).metrics
