"""Backdoor sequela: other attacks run on a model before and after its backdoor is removed."""

from backdoorlab.registry import import_submodules
from backdoorlab.sequela.base import (SEQUELA, SequelaAttack, SequelaContext, SequelaSettings,
                                      parse_sequela)

import_submodules(__name__)

__all__ = ["SEQUELA", "SequelaAttack", "SequelaContext", "SequelaSettings", "parse_sequela"]
