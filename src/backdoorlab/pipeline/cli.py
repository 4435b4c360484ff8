"""A stage's command line: its positional names and seed, one-line errors, and the import log.

Every stage script's ``main`` runs through :func:`run_stage`: a user error becomes one line on
stderr and exit code 2, a diverged training one line and exit code 1. When
``BACKDOORLAB_IMPORT_LOG`` names a folder, the stage also writes there the library files it
imported, so a test can check them against the stage's declared DVC dependencies
(tests/test_code_deps.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, NoReturn

from backdoorlab.config import Params
from backdoorlab.errors import ConfigError, DataError, TrainingDiverged
from backdoorlab.layout import attack_of
from backdoorlab.settings import require

IMPORT_LOG = "BACKDOORLAB_IMPORT_LOG"


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the message, then the usage) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        usage = " ".join(self.format_usage().split())
        self.exit(2, f"error: {message} ({usage})\n")


def stage_arguments(doc: str | None, *names: str, seeded: bool = False, sized: bool = False) -> argparse.Namespace:
    """Parse a stage's positional arguments (``attack``, ``defense``; ``"attack?"``: optional),
    for a replicated stage ``--seed``, and for a defense stage (``sized``) ``--clean-fraction``; a
    wrong or missing one is one line and exit 2 (names are checked against params.yaml by
    :func:`require_known`, the seed by :func:`replicate`)."""
    parser = OneLineParser(description=(doc or "").strip().splitlines()[0] if doc else None)
    for name in names:
        parser.add_argument(name.rstrip("?"), nargs="?" if name.endswith("?") else None,
                            help=f"a name under params.yaml's `{name.rstrip('?')}s` section")
    if seeded:
        parser.add_argument("--seed", type=int, default=None,
                            help="the replicate (one of grid.seeds; default: the first)")
    if sized:
        parser.add_argument("--clean-fraction", type=float, default=None,
                            help="the defender's share of the training set, instead of the instance's own "
                                 "(a fidelity-map cell, named <defense>_<percent>pct)")
    return parser.parse_args()


def replicate(params: Params, seed: int | None) -> int:
    """The replicate a stage runs: ``seed`` (a non-negative integer), or the first of ``grid.seeds``."""
    if seed is None:
        return params.grid.seeds[0]
    require(seed >= 0, "--seed", f"must be a non-negative integer, got {seed}")
    return seed


def require_known(params: Params, attack: str | None = None, defense: str | None = None,
                  paradigm: str | None = None, cleanser: str | None = None, regime: str | None = None) -> None:
    """One-line errors for a stage asked to run an attack (or victim ``<paradigm>-<attack>``,
    ``<regime>-<attack>``), defense (post-training, or training-time for the cells they share),
    paradigm, training-time defense or training regime params.yaml does not define."""
    def known(family: str, name: str, what: str) -> None:
        defined = params.section(family)
        if name not in defined:
            raise ConfigError(f"{what} {name!r}: not in params.yaml's {family} (defined: {', '.join(defined) or 'none'})")

    if cleanser is not None:
        known("cleansers", cleanser, "cleanser")
    if regime is not None:
        known("regimes", regime, "regime")
    if paradigm is not None:
        known("paradigms", paradigm, "paradigm")
    if attack is not None:
        known("attacks", attack_of(params, attack), "attack")
    if defense is not None and defense not in params.section("cleansers"):
        known("defenses", defense, "defense")


def imported_library_files() -> list[str]:
    """The stage script (as run, relative to the repository root) and the backdoorlab source files
    this process has imported, as ``src/backdoorlab/...``."""
    src = Path(__file__).resolve().parents[2]
    files = set()
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if path and (module.__name__ == "backdoorlab" or module.__name__.startswith("backdoorlab.")):
            files.add(f"src/{Path(path).resolve().relative_to(src).as_posix()}")
    return [Path(sys.argv[0]).as_posix(), *sorted(files)]


def write_import_log(folder: str) -> None:
    """One JSON file per stage run: its command line and the library files it imported."""
    command = " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]])
    name = hashlib.sha256(command.encode()).hexdigest()[:16]
    Path(folder).mkdir(parents=True, exist_ok=True)
    (Path(folder) / f"{name}.json").write_text(json.dumps({"command": command, "files": imported_library_files()}))


def run_stage(main: Callable[[], None]) -> None:
    """Run a stage's main; a user error becomes one line on stderr and exit code 2, a diverged
    training one line and exit code 1."""
    try:
        main()
    except (ConfigError, DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    if os.environ.get(IMPORT_LOG):
        write_import_log(os.environ[IMPORT_LOG])
