"""A script's library dependencies: the ``src/backdoorlab`` files its imports reach, read statically.

Every ``import`` statement counts, at module level or inside a function (a function may run), except
under ``if TYPE_CHECKING:``; importing ``backdoorlab.a.b`` runs ``backdoorlab/__init__.py`` and
``backdoorlab/a/__init__.py`` too. What a stage imports by name at run time (a registry entry: an
attack's, a defense's, a model's module) is not visible here; the DAG generator adds those
modules' closures per cell from params.yaml (:func:`plugin_closure`).
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

from backdoorlab.registry import PACKAGE_ROOT, Registry, module_file

PACKAGE = "backdoorlab"
SRC = PACKAGE_ROOT.parent  # the folder holding the package (the repository's src/)


def _type_checking_block(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported_names(path: Path) -> set[str]:
    """Every ``backdoorlab...`` module name an import statement of ``path`` names (for ``from m
    import x``, both ``m`` and ``m.x``: ``x`` may be a submodule)."""
    names: set[str] = set()

    def visit(node: ast.AST) -> None:
        if _type_checking_block(node):
            return
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(), str(path)))
    return {name for name in names if name == PACKAGE or name.startswith(f"{PACKAGE}.")}


def source_of(module: str) -> Path | None:
    """The file a module name runs: a package's ``__init__.py``, a module's ``.py``, or None (a name
    imported from a module, not a module)."""
    package = SRC.joinpath(*module.split(".")) / "__init__.py"
    if package.is_file():
        return package
    path = module_file(module)
    return path if path.is_file() else None


def _sources(names: set[str]) -> set[Path]:
    """The files importing ``names`` runs: each module and the packages on its way (their ``__init__``)."""
    files = set()
    for name in names:
        parts = name.split(".")
        for end in range(1, len(parts) + 1):
            source = source_of(".".join(parts[:end]))
            if source is not None:
                files.add(source)
    return files


@cache
def _closure(path: Path) -> frozenset[Path]:
    seen: set[Path] = set()
    todo = [path]
    while todo:
        for source in _sources(imported_names(todo.pop())) - seen:
            seen.add(source)
            todo.append(source)
    return frozenset(seen)


def closure(*scripts: Path) -> set[Path]:
    """The library files the scripts import, transitively (absolute paths; the scripts not included)."""
    return set().union(*(_closure(path.resolve()) for path in scripts))


def plugin_closure(registry: Registry, name: str, key: str) -> set[Path]:
    """The files a registry entry runs when the registry imports it: its module, the packages on its
    way, and what those import."""
    sources = _sources({registry.module(name, key)})
    return sources | closure(*sources)
