"""Post-training backdoor defenses, one module each, built by name from params.yaml."""

from backdoorlab.defenses.base import (DEFENSES, Defense, DefenseContext, DefenseOutcome,
                                       DefenseSpec, build_defense, finetune)
from backdoorlab.registry import import_submodules

import_submodules(__name__)

__all__ = ["DEFENSES", "Defense", "DefenseContext", "DefenseOutcome", "DefenseSpec",
           "build_defense", "finetune"]
