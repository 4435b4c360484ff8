"""params.yaml as a composition of conf/, made by Hydra exactly as DVC makes it.

With ``[hydra] enabled = true`` in .dvc/config, ``dvc exp run -S key=value`` (or ``-S data=cifar10``,
a config group) composes ``conf/config.yaml`` with the overrides and rewrites params.yaml; without
``-S`` it, like ``dvc repro``, reads params.yaml as it is. This module runs the same composition
(DVC's own function) for everything else: ``make params`` after editing conf/, the tests' tiny
profile, and the check that the committed params.yaml is the default composition.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import yaml

CONF_DIR = "conf"
CONFIG_NAME = "config"


def compose_params(output: Path, overrides: Sequence[str] = (), root: Path | None = None) -> None:
    """Write the composition of ``root``/conf with ``overrides`` (Hydra syntax) to ``output``."""
    from dvc.utils.hydra import compose_and_dump  # lazy: Hydra's import costs a second

    root = (root or Path.cwd()).resolve()
    compose_and_dump(output, str(root / CONF_DIR), None, CONFIG_NAME, str(root), list(overrides))


def composed(overrides: Sequence[str] = (), root: Path | None = None) -> dict[str, Any]:
    """The composition as a dict (what params.yaml would hold)."""
    with tempfile.TemporaryDirectory() as folder:
        output = Path(folder) / "params.yaml"
        compose_params(output, overrides, root)
        return yaml.safe_load(output.read_text())
