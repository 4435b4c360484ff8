"""The pool -> the seeded train, test and shadow splits every stage reads (``prepare``'s job).

Two ways, chosen by ``data.split``:

- ``pooled``: every image of the data set (its train and test parts alike) forms one pool, from
  which a seeded permutation draws the test split, then the shadow split (the membership
  attacker's own data), and leaves the rest for training. Any image folder works this way.
- ``official``: the data set's own test part is the test split (all of it, or a seeded subset of
  ``test_size``), as published numbers (the D3 table, BackdoorBench) are measured; the shadow
  split and the training set (hence the defender's data) come from its training part only.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch

from backdoorlab.config import DataSettings, generator_for
from backdoorlab.data.base import ImageSet, Pool
from backdoorlab.settings import require


@dataclass(frozen=True)
class Splits:
    train: ImageSet
    test: ImageSet
    shadow: ImageSet


def seeded_subset(data: ImageSet, size: int | None, seed: int, purpose: str) -> ImageSet:
    """``size`` images of ``data`` drawn with the split seed, in their original order (all of
    them when ``size`` is None or not smaller)."""
    if size is None or size >= len(data):
        return data
    keep = torch.randperm(len(data), generator=generator_for(seed, "prepare", purpose))
    return data.subset(keep[:size].sort().values)


def carve(data: ImageSet, sizes: list[int], seed: int) -> list[ImageSet]:
    """``data`` permuted with the split seed and cut into parts of ``sizes``, then the rest."""
    order = torch.randperm(len(data), generator=generator_for(seed, "prepare", "split"))
    bounds = [0, *itertools.accumulate(sizes)]
    return [data.subset(order[start:end]) for start, end in zip(bounds, bounds[1:])] + [data.subset(order[bounds[-1]:])]


def split_pool(pool: Pool, settings: DataSettings, seed: int) -> Splits:
    """The splits ``settings`` ask for; one line naming the key when the data cannot give them."""
    if settings.split == "pooled":
        data = seeded_subset(pool.data, settings.pool_size, seed, "pool")
        held_out = settings.test_size + settings.shadow_size  # type: ignore[operator]
        require(held_out < len(data), "data.test_size",
                f"test_size + shadow_size = {held_out} leaves no training data in a pool of {len(data)}")
        test, shadow, train = carve(data, [settings.test_size, settings.shadow_size], seed)  # type: ignore[list-item]
        return Splits(train=train, test=test, shadow=shadow)
    parts = pool.parts()
    require(parts is not None, "data.split", f"official: data set {settings.dataset!r} has no official test "
            "part (image_folder: set data.options.test_root); use pooled")
    train_part, test_part = parts  # type: ignore[misc]
    require(settings.test_size is None or settings.test_size <= len(test_part), "data.test_size",
            f"{settings.test_size} is more than the official test part's {len(test_part)} images (null: all of them)")
    data = seeded_subset(train_part, settings.pool_size, seed, "pool")
    require(settings.shadow_size < len(data), "data.shadow_size",
            f"{settings.shadow_size} leaves no training data in a training part of {len(data)} images")
    shadow, train = carve(data, [settings.shadow_size], seed)
    return Splits(train=train, test=seeded_subset(test_part, settings.test_size, seed, "test"), shadow=shadow)
