"""Backdoor attacks, built by name from params.yaml's ``attacks`` section."""

from backdoorlab.attacks.base import (ATTACKS, Attack, AttackerResources, PoisonConfig, PoisonResult, TriggeredSet,
                                      build_attack)

__all__ = ["ATTACKS", "Attack", "AttackerResources", "PoisonConfig", "PoisonResult", "TriggeredSet", "build_attack"]
