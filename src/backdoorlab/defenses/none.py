"""No defense: the backdoored model as it is, the reference every other cell is compared to."""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome


@DEFENSES.register("none")
class NoDefense(Defense):
    @dataclass(frozen=True)
    class Config:
        pass

    def apply(self, model: nn.Module, ctx: DefenseContext) -> DefenseOutcome:
        return DefenseOutcome(model)
