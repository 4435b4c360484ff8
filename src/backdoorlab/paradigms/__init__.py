"""Sha et al.'s two other training paradigms, besides a model trained from scratch on poisoned data.

A registry of paradigm methods (:mod:`~backdoorlab.paradigms.base`), one module each:

- ``encoder`` (:mod:`~backdoorlab.paradigms.encoder`): :mod:`~backdoorlab.paradigms.simclr`
  pre-trains an image encoder without labels, :mod:`~backdoorlab.paradigms.badencoder` plants a
  backdoor in a copy of it, and the victim trains a downstream head on the frozen encoder
  (:mod:`~backdoorlab.paradigms.composed`), whose encoder-plus-head model is what the defenses see.
- ``transfer_data`` and ``transfer_model`` (:mod:`~backdoorlab.paradigms.transfer` and one module
  each): a model pre-trained on a source task becomes a downstream model (new head; all layers or
  only the last block trainable), from a clean source model and poisoned downstream data, or from
  a backdoored source model and clean downstream data.

Their stages are generated into ``full/paradigms/dvc.yaml`` (``scripts/dag.py``).
"""

from backdoorlab.paradigms.base import PARADIGMS, Paradigm, ParadigmContext, Trained, build_paradigm

__all__ = ["PARADIGMS", "Paradigm", "ParadigmContext", "Trained", "build_paradigm"]
