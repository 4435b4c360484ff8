"""Layers picked by name from params.yaml, and forward hooks that read their outputs.

Defenses that act on particular layers (D3's distance, FST's classifier, NAD's attention maps)
name them as ``model.named_modules()`` does (``classifier``, ``features.1``); resolving a name
here gives every such defense the same error for a typo: one line naming the key and the choices.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from backdoorlab.errors import ConfigError

WEIGHTED = (nn.Linear, nn.Conv2d)


def module_by_name(model: nn.Module, name: str, key: str) -> nn.Module:
    """The sub-module called ``name``; ``key`` is the params.yaml key it came from."""
    modules = dict(model.named_modules())
    if name not in modules:
        known = ", ".join(n for n in modules if n)
        raise ConfigError(f"{key}: no layer named {name!r} in this model (layers: {known})")
    return modules[name]


def weighted_layers(model: nn.Module, names: Sequence[str], key: str) -> list[nn.Module]:
    """Every linear and conv layer inside the named modules (a module may be a whole block)."""
    layers: dict[int, nn.Module] = {}  # by id: overlapping names (a block and its conv) count once
    for i, name in enumerate(names):
        found = [m for m in module_by_name(model, name, f"{key}[{i}]").modules() if isinstance(m, WEIGHTED)]
        if not found:
            raise ConfigError(f"{key}[{i}]: layer {name!r} holds no linear or conv weights")
        layers.update((id(m), m) for m in found)
    return list(layers.values())


class ActivationTap:
    """Records the outputs of named modules on every forward pass, via forward hooks.

    A context manager, so the hooks never outlive their use (a saved or re-used model carries no
    hidden state): ``with ActivationTap(model, names, key) as tap: model(x); tap.outputs[name]``.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], key: str) -> None:
        self.modules = {name: module_by_name(model, name, f"{key}[{i}]") for i, name in enumerate(names)}
        self.outputs: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> "ActivationTap":
        for name, module in self.modules.items():
            self._handles.append(module.register_forward_hook(self._recorder(name)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.outputs.clear()

    def _recorder(self, name: str):  # type: ignore[no-untyped-def]
        def record(module: nn.Module, inputs: object, output: torch.Tensor) -> None:
            self.outputs[name] = output

        return record
