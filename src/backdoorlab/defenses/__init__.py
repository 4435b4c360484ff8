"""Post-training backdoor defenses, one module each, built by name from params.yaml's named
instances (:mod:`~backdoorlab.defenses.spec`); a method's module is imported only when a cell runs it."""

from backdoorlab.defenses.base import DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength, finetune
from backdoorlab.defenses.spec import DefenseSpec, build_defense

__all__ = ["DEFENSES", "Defense", "DefenseContext", "DefenseOutcome", "DefenseSpec", "Strength",
           "build_defense", "finetune"]
