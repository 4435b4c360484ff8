"""Backdoor sequela: other attacks run on a model before and after its backdoor is removed."""

from backdoorlab.sequela.base import (SEQUELA, SequelaAttack, SequelaContext, SequelaSettings,
                                      parse_sequela)

__all__ = ["SEQUELA", "SequelaAttack", "SequelaContext", "SequelaSettings", "parse_sequela"]
