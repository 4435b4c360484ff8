"""Post-training backdoor defenses, one module each, built by name from params.yaml."""

from backdoorlab.defenses.base import (DEFENSES, Defense, DefenseContext, DefenseOutcome, Strength,
                                       finetune)
from backdoorlab.defenses.spec import DefenseSpec, build_defense
from backdoorlab.registry import import_submodules

import_submodules(__name__)

__all__ = ["DEFENSES", "Defense", "DefenseContext", "DefenseOutcome", "DefenseSpec", "Strength",
           "build_defense", "finetune"]
