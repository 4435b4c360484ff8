"""Paper-scale data sets through torchvision (CIFAR-10, GTSRB).

They need the files on disk (``root``); with ``download: true`` torchvision fetches them, which
fails on a machine without internet, so that failure is turned into a one-line error naming the
folder and how to provide it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet
from backdoorlab.errors import DataError


def _to_image_set(pairs: list[tuple[object, int]], size: int | None) -> ImageSet:
    """Turn (PIL image, label) pairs into one uint8 tensor, resizing if asked."""
    arrays, labels = [], []
    for image, label in pairs:
        if size is not None:
            image = image.resize((size, size))  # type: ignore[attr-defined]
        arrays.append(np.asarray(image.convert("RGB"), dtype=np.uint8))  # type: ignore[attr-defined]
        labels.append(int(label))
    images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return ImageSet(images, torch.tensor(labels, dtype=torch.int64))


def _open_or_explain(name: str, root: str, download: bool, opener):  # type: ignore[no-untyped-def]
    try:
        return opener()
    except (RuntimeError, OSError) as error:
        hint = ("download failed: this machine has no internet; copy the files there first"
                if download else "set download: true on a machine with internet, or copy the files there")
        raise DataError(f"{root}: {name} not found or unreadable ({error}); {hint}") from None


@DATASETS.register("cifar10")
class CIFAR10(Dataset):
    image_shape = (3, 32, 32)
    num_classes = 10

    @dataclass(frozen=True)
    class Config:
        root: str = "data/external/cifar10"
        download: bool = False

    def load(self) -> ImageSet:
        from torchvision.datasets import CIFAR10 as TorchCIFAR10  # lazy: torchvision is slow to import

        cfg = self.config
        parts = [
            _open_or_explain("CIFAR-10", cfg.root, cfg.download,
                             lambda train=train: TorchCIFAR10(cfg.root, train=train, download=cfg.download))
            for train in (True, False)
        ]
        images = torch.from_numpy(np.concatenate([p.data for p in parts])).permute(0, 3, 1, 2)
        labels = torch.tensor([y for p in parts for y in p.targets], dtype=torch.int64)
        return ImageSet(images.contiguous(), labels)


@DATASETS.register("gtsrb")
class GTSRB(Dataset):
    image_shape = (3, 32, 32)
    num_classes = 43

    @dataclass(frozen=True)
    class Config:
        root: str = "data/external/gtsrb"
        download: bool = False

    def load(self) -> ImageSet:
        from torchvision.datasets import GTSRB as TorchGTSRB

        cfg = self.config
        parts = [
            _open_or_explain("GTSRB", cfg.root, cfg.download,
                             lambda split=split: TorchGTSRB(cfg.root, split=split, download=cfg.download))
            for split in ("train", "test")
        ]
        return _to_image_set([pair for part in parts for pair in part], size=32)
