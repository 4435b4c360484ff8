"""Backdoor attacks (data poisoning), built by name from params.yaml's ``attacks`` section."""

from backdoorlab.attacks.base import ATTACKS, Attack, PoisonResult, build_attack
from backdoorlab.registry import import_submodules

import_submodules(__name__)

__all__ = ["ATTACKS", "Attack", "PoisonResult", "build_attack"]
