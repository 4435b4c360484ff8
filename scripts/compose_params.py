"""Compose conf/ into params.yaml, exactly as `dvc exp run -S ...` does with Hydra enabled.

    python scripts/compose_params.py                          # the default composition (`make params`)
    python scripts/compose_params.py data=cifar10 model=vgg16_bn train.epochs=30
    python scripts/compose_params.py profile=paper            # the paper-scale profile
    python scripts/compose_params.py --check                  # is params.yaml the default composition?

`dvc exp run` composes only when it is given `-S`; `dvc repro` reads params.yaml as it is. After
editing conf/, run this so that `dvc repro` sees the same values.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from backdoorlab.compose import compose_params, composed

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides: group=option or key=value")
    parser.add_argument("--check", action="store_true", help="compare with params.yaml instead of writing it")
    parser.add_argument("--output", type=Path, default=ROOT / "params.yaml")
    args = parser.parse_args()
    if not args.check:
        compose_params(args.output, args.overrides, ROOT)
        return 0
    if composed(args.overrides, ROOT) != yaml.safe_load(args.output.read_text()):
        print(f"{args.output} differs from the composition of conf/ ({' '.join(args.overrides) or 'defaults'}): "
              "run `make params` after editing conf/", file=sys.stderr)
        return 1
    print(f"{args.output} is the composition of conf/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
