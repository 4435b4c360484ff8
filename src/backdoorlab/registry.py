"""Typed name -> class registries, one per pluggable family, each entry imported only when asked for.

Every family (data sets, models, attacks, defenses, training-time defenses, paradigms, sequela
attacks) is a package with one module per entry; an entry's module registers its class with a
decorator, ``@DEFENSES.register("nc")``. Adding an entry is adding that one file.

A registry never imports the whole package: it reads which module registers which name from the
modules' source (the decorator lines, without running them) and imports the one module a name
needs, on first use. So a stage that runs ``nc`` loads ``defenses/nc.py`` and not ``d3.py``, and
its DVC dependencies (computed from imports by :mod:`backdoorlab.graph`) name only the files it
runs. The same index tells the DAG generator which file implements a method.

The family registries live here, at the bottom of the package, so that code which dispatches on a
name (a paradigm victim's task, say) can reach an entry without importing its family's base.
"""

from __future__ import annotations

import ast
import importlib
from functools import cache
from pathlib import Path
from typing import Any, Callable, Generic, TypeVar

from backdoorlab.errors import ConfigError

T = TypeVar("T")
PACKAGE_ROOT = Path(__file__).resolve().parent


@cache
def registered_modules(package: str) -> dict[str, str]:
    """``{name: module}`` for every ``<registry>.register("name")`` decorator in the package's
    modules, read from their source: nothing is imported."""
    folder = PACKAGE_ROOT.joinpath(*package.split(".")[1:])
    entries: dict[str, str] = {}
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.ClassDef, ast.FunctionDef)):
                for decorator in node.decorator_list:
                    if (isinstance(decorator, ast.Call) and isinstance(decorator.func, ast.Attribute)
                            and decorator.func.attr == "register" and decorator.args
                            and isinstance(decorator.args[0], ast.Constant)):
                        entries[decorator.args[0].value] = f"{package}.{path.stem}"
    return entries


def module_file(module: str) -> Path:
    """The source file of a module of this package (``backdoorlab.defenses.nc`` -> .../defenses/nc.py)."""
    return PACKAGE_ROOT.joinpath(*module.split(".")[1:]).with_suffix(".py")


class Registry(Generic[T]):
    """Maps a short name (as written in params.yaml) to the class implementing it, importing the
    entry's module the first time the name is looked up."""

    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        def add(cls: type[T]) -> type[T]:
            if name in self._entries:
                raise RuntimeError(f"{self.kind} {name!r} registered twice")
            self._entries[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return add

    def module(self, name: str, key: str) -> str:
        """The module that registers ``name``; ``key`` is the params.yaml key it came from."""
        modules = registered_modules(self.package)
        if name not in modules:
            raise ConfigError(f"{key}: unknown {self.kind} {name!r} (known: {', '.join(sorted(modules))})")
        return modules[name]

    def get(self, name: str, key: str) -> type[T]:
        """Look ``name`` up, importing its module if needed."""
        if name not in self._entries:
            importlib.import_module(self.module(name, key))
            if name not in self._entries:
                raise RuntimeError(f"{self.module(name, key)} does not register {self.kind} {name!r} with {self.package}")
        return self._entries[name]

    def names(self) -> list[str]:
        return sorted(registered_modules(self.package))

    def __contains__(self, name: object) -> bool:
        return name in registered_modules(self.package)


DATASETS: Registry[Any] = Registry("dataset", "backdoorlab.data")
MODELS: Registry[Any] = Registry("model", "backdoorlab.models")
ATTACKS: Registry[Any] = Registry("attack", "backdoorlab.attacks")
DEFENSES: Registry[Any] = Registry("defense", "backdoorlab.defenses")
CLEANSERS: Registry[Any] = Registry("training-time defense", "backdoorlab.cleansing")
PARADIGMS: Registry[Any] = Registry("paradigm", "backdoorlab.paradigms")
SEQUELA: Registry[Any] = Registry("sequela attack", "backdoorlab.sequela")
