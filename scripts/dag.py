"""Write every pipeline file (dvc.yaml, full/**/dvc.yaml) from params.yaml and the stages' imports.

    python scripts/dag.py            # rewrite the files (make dag)
    python scripts/dag.py --check    # exit 1 if one is out of date (tests/test_dag.py)

Run it after changing params.yaml's grid (attacks, defenses, seeds, ...), a method of a named
instance, or an import: each stage's code dependencies are the library files it imports
(backdoorlab/graph). The blocks are described in backdoorlab/graph/blocks.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from backdoorlab.config import load_params
from backdoorlab.errors import ConfigError
from backdoorlab.graph.blocks import HEADER, generate

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args()
    try:
        files = generate(ROOT, load_params(ROOT / "params.yaml"))
    except ConfigError as error:
        sys.exit(f"error: {error}")
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    orphans = [path for path in generated_files(ROOT) if path not in files]  # e.g. a seed taken off grid.seeds
    if args.check:
        for path in stale:
            print(f"out of date: {path.relative_to(ROOT)} (run `make dag`)", file=sys.stderr)
        for path in orphans:
            print(f"no longer generated: {path.relative_to(ROOT)} (run `make dag`)", file=sys.stderr)
        sys.exit(1 if stale or orphans else 0)
    for path in stale:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(files[path])
    for path in orphans:  # its stages would still run: DVC reads every dvc.yaml in the repository
        path.unlink()
        path.with_name("dvc.lock").unlink(missing_ok=True)
        remove_empty_folders(path.parent, stop=ROOT / "full")
    print(f"wrote {len(stale)} file(s), removed {len(orphans)}; {len(files) - len(stale)} already up to date")


def remove_empty_folders(folder: Path, stop: Path) -> None:
    """``folder`` and its parents below ``stop`` while they are empty (a victim's ``s<k>`` folder,
    then the victim's)."""
    while folder != stop and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent


def generated_files(root: Path) -> list[Path]:
    """The pipeline files this script wrote earlier: their first line is its header."""
    marker = HEADER.splitlines()[0]
    return [path for path in [root / "dvc.yaml", *sorted((root / "full").glob("**/dvc.yaml"))]
            if path.is_file() and path.read_text().startswith(marker)]


if __name__ == "__main__":
    main()
