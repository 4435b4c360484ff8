"""A typed name -> class registry, filled by decorators in one-file-per-entry packages.

Every pluggable family (data sets, attacks, models, defenses, sequela attacks) keeps one
``Registry``. A package's ``__init__`` calls :func:`import_submodules` so that adding an entry
is adding one file: the file's ``@REGISTRY.register("name")`` line is all the wiring there is.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable, Generic, TypeVar

from backdoorlab.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Maps a short name (as written in params.yaml) to the class implementing it."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return add

    def get(self, name: str, key: str) -> type[T]:
        """Look ``name`` up; ``key`` is the params.yaml key it came from, for the error message."""
        try:
            return self._entries[name]
        except KeyError:
            known = ", ".join(sorted(self._entries))
            raise ConfigError(f"{key}: unknown {self.kind} {name!r} (known: {known})") from None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries


def import_submodules(package_name: str) -> None:
    """Import every module of a package so their ``register`` decorators run."""
    package = importlib.import_module(package_name)
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package_name}.{info.name}")
