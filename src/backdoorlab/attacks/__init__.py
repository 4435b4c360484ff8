"""Backdoor attacks, built by name from params.yaml's ``attacks`` section."""

from backdoorlab.attacks.base import (ATTACKS, Attack, AttackerResources, PoisonConfig, PoisonResult, TriggeredSet,
                                      build_attack)
from backdoorlab.registry import import_submodules

import_submodules(__name__)

__all__ = ["ATTACKS", "Attack", "AttackerResources", "PoisonConfig", "PoisonResult", "TriggeredSet", "build_attack"]
