"""Benchmark: reading a folder of small JPEGs, the image_folder data set's first and later reads.

    python bench/image_folder.py                    # 60,000 JPEGs of 64x64 in 10 classes, read at 32x32
    python bench/image_folder.py --images 6000      # a quick check

Writes the images once into a temporary folder (smooth random images: upsampled 8x8 noise, so the
files are the size of natural ones rather than of pure noise), then prints the seconds and images
per second of (1) one decoding process, as a per-sample loader without workers would read them,
(2) a process per core, the data set's first read (listing, decoding, writing the cache), and
(3) the cached read that follows (listing, a stat per file, loading the tensors).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from backdoorlab.data import DATASETS
from backdoorlab.data.image_folder import class_folders, class_tree, decode_images


def write_jpegs(root: Path, images: int, classes: int, side: int) -> int:
    """``images`` smooth random JPEGs in ``classes`` folders; returns their total size in bytes."""
    generator = torch.Generator().manual_seed(0)
    total = 0
    for start in range(0, images, 1000):
        count = min(1000, images - start)
        coarse = torch.rand(count, 3, 8, 8, generator=generator)
        batch = F.interpolate(coarse, size=(side, side), mode="bicubic", align_corners=False)
        pixels = (batch.clamp(0, 1) * 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        for i in range(count):
            folder = root / f"class_{(start + i) % classes:03d}"
            folder.mkdir(exist_ok=True)
            path = folder / f"{start + i:06d}.jpg"
            Image.fromarray(np.ascontiguousarray(pixels[i])).save(path, quality=90)
            total += path.stat().st_size
    return total


def timed(label: str, count: int, action) -> None:  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    action()
    seconds = time.perf_counter() - started
    print(f"{label:<44} {seconds:7.2f} s  {count / seconds:9,.0f} images/s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=60_000)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--side", type=int, default=64, help="side of the JPEGs written")
    parser.add_argument("--size", type=int, default=32, help="image_size they are read at")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-folder-") as tmp:
        root, cache = Path(tmp) / "images", Path(tmp) / "cache"
        root.mkdir()
        started = time.perf_counter()
        size = write_jpegs(root, args.images, args.classes, args.side)
        print(f"wrote {args.images:,} JPEGs of {args.side}x{args.side} ({size / args.images / 1024:.1f} KiB each) "
              f"in {time.perf_counter() - started:.1f} s; reading at {args.size}x{args.size} on {os.cpu_count()} cores")
        files, _ = class_tree(root, class_folders(root))
        timed("decode, 1 process", len(files), lambda: decode_images(files, args.size, 3, workers=1))
        cls = DATASETS.get("image_folder", "data.dataset")
        dataset = cls(cls.Config(root=str(root), image_size=args.size, cache_dir=str(cache)))
        timed(f"first read ({os.cpu_count()} processes, writes the cache)", len(files), dataset.load)
        timed("later read (from the cache)", len(files), dataset.load)


if __name__ == "__main__":
    main()
