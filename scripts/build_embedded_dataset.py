"""Build the embedded Fashion-MNIST subset shipped in data/embedded/ (run once; result committed).

Source: Debian's package ``dataset-fashion-mnist`` (``apt-get install dataset-fashion-mnist``), the
original IDX files of Zalando's Fashion-MNIST (MIT license, notice in data/embedded/LICENSE).
The subset is class-balanced and drawn with a fixed seed from all 70,000 images, so rebuilding it
gives the same bytes' worth of content. ``source_index`` records each image's index in the
concatenation (official train split, then test split) for provenance.

    python scripts/build_embedded_dataset.py [--per-class 1500] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from backdoorlab.data.fashion_mnist import read_idx_folder
from backdoorlab.io import atomic_path

SOURCE = Path("/usr/share/datasets/fashion-mnist")
TARGET = Path("data/embedded/fashion_mnist_subset.npz")


def balanced_indices(labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    chosen = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False)
              for c in np.unique(labels)]
    return np.sort(np.concatenate(chosen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--output", type=Path, default=TARGET)
    parser.add_argument("--per-class", type=int, default=1500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    images, labels = read_idx_folder(args.source)
    keep = balanced_indices(labels, args.per_class, args.seed)
    with atomic_path(args.output) as tmp, open(tmp, "wb") as handle:
        np.savez_compressed(handle, images=images[keep], labels=labels[keep],
                            source_index=keep.astype(np.int32))
    print(f"{args.output}: {len(keep)} images, {args.output.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
