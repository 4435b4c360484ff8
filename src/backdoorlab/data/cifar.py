"""CIFAR-10 and CIFAR-100 from their *binary* releases, read directly.

The Python releases are pickles, which the pipeline never loads. A binary record is the label
byte(s) then 3 x 32 x 32 pixel bytes: CIFAR-10 has one label, CIFAR-100 a coarse (20 super-
classes) then a fine (100 classes) one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet, Pool
from backdoorlab.data.files import FilesConfig, fetch_archive, require_files
from backdoorlab.errors import DataError

PIXELS = 3 * 32 * 32


def read_cifar_binary(path: Path, label_bytes: int, label_index: int, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch: records of ``label_bytes`` label bytes then the pixels; the label kept is
    byte ``label_index``."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = label_bytes + PIXELS
    if raw.size == 0 or raw.size % record:
        raise DataError(f"{path}: not a CIFAR binary batch (size {raw.size} is not a multiple of {record})")
    rows = raw.reshape(-1, record)
    labels = rows[:, label_index].astype(np.int64)
    if labels.max() >= num_classes:
        raise DataError(f"{path}: label byte {labels.max()} is out of range for {num_classes} classes")
    return rows[:, label_bytes:].reshape(-1, 3, 32, 32), labels


def read_cifar_folder(folder: Path, names: list[str], label_bytes: int, label_index: int,
                      num_classes: int) -> ImageSet:
    parts = [read_cifar_binary(folder / name, label_bytes, label_index, num_classes) for name in names]
    return ImageSet(torch.from_numpy(np.concatenate([p[0] for p in parts])).contiguous(),
                    torch.from_numpy(np.concatenate([p[1] for p in parts])))


def read_cifar_pool(folder: Path, train: list[str], test: list[str], label_bytes: int, label_index: int,
                    num_classes: int) -> Pool:
    """The training batches, then the official test batch."""
    return Pool.of_parts(read_cifar_folder(folder, train, label_bytes, label_index, num_classes),
                         read_cifar_folder(folder, test, label_bytes, label_index, num_classes))


@DATASETS.register("cifar10")
class CIFAR10(Dataset):
    image_shape = (3, 32, 32)
    num_classes = 10
    URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
    MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
    TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
    TEST = ["test_batch.bin"]

    @dataclass(frozen=True)
    class Config(FilesConfig):
        root: str = "data/external/cifar10"

    def load(self) -> Pool:
        root = Path(self.config.root)
        folder = root / "cifar-10-batches-bin"
        fetch_archive(self.config, folder, self.URL, self.MD5, "CIFAR-10")
        require_files(folder, self.TRAIN + self.TEST, "CIFAR-10 binary",
                      f"the contents of cifar-10-binary.tar.gz (extract it into {root})")
        return read_cifar_pool(folder, self.TRAIN, self.TEST, 1, 0, self.num_classes)


@DATASETS.register("cifar100")
class CIFAR100(Dataset):
    image_shape = (3, 32, 32)
    URL = "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz"
    MD5 = "03b5dce01913d631647c71ecec9e9cb8"

    @dataclass(frozen=True)
    class Config(FilesConfig):
        root: str = "data/external/cifar100"
        labels: Literal["fine", "coarse"] = "fine"  # 100 classes, or the 20 superclasses

    @property
    def num_classes(self) -> int:  # type: ignore[override]
        return 100 if self.config.labels == "fine" else 20

    def load(self) -> Pool:
        root = Path(self.config.root)
        folder = root / "cifar-100-binary"
        fetch_archive(self.config, folder, self.URL, self.MD5, "CIFAR-100")
        require_files(folder, ["train.bin", "test.bin"], "CIFAR-100 binary",
                      f"the contents of cifar-100-binary.tar.gz (extract it into {root})")
        return read_cifar_pool(folder, ["train.bin"], ["test.bin"], 2, 1 if self.config.labels == "fine" else 0,
                               self.num_classes)
