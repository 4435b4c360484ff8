"""Copy a repository's sources (tracked and not-ignored files, no outputs) for a throwaway run.

The pipeline tests and the cold-repro benchmark both need a fresh checkout in a temporary folder
that DVC can reproduce from scratch without touching the real workspace or its cache.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def copy_sources(root: Path, dst: Path) -> None:
    """Copy what git would check out (plus untracked, not-ignored files), minus results."""
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=root,
                            capture_output=True, text=True, check=True).stdout.split()
    for name in listed:
        if Path(name).name == "dvc.lock" or name.startswith("reports/") or not (root / name).is_file():
            continue
        (dst / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / name, dst / name)
