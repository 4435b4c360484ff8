"""Sha et al.'s two other training paradigms, besides a model trained from scratch on poisoned data.

- *Encoder-based*: :mod:`~backdoorlab.paradigms.simclr` pre-trains an image encoder without
  labels, :mod:`~backdoorlab.paradigms.badencoder` plants a backdoor in a copy of it, and the
  victim trains a downstream head on the frozen encoder (:mod:`~backdoorlab.paradigms.composed`),
  whose encoder-plus-head model is what the defenses see.
- *Transfer-based*: :mod:`~backdoorlab.paradigms.transfer` turns a model pre-trained on a source
  task into a downstream model (new head; all layers or only the last block trainable).

The library layer only: the stages that cache each pre-training and the params that choose
between the threat models come with the DAG.
"""
