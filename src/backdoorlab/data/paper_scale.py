"""Paper-scale data sets: CIFAR-10 (binary release, read directly) and GTSRB (via torchvision).

Both need their files on disk under ``root``. With ``download: true`` they are fetched from the
data sets' official hosts, which fails on a machine without internet; every such failure becomes
a one-line DataError naming the folder and how to provide the files. CIFAR-10 is read from its
*binary* release (label byte + 3,072 pixel bytes per record), not the Python release, whose
batches are pickles.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet
from backdoorlab.errors import DataError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
CIFAR10_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"
CIFAR10_FILES = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]


def fetch(url: str, root: Path, md5: str | None, what: str) -> None:
    """Download and extract an archive into ``root``; offline, say so in one line."""
    from torchvision.datasets.utils import download_and_extract_archive  # lazy: slow import

    try:
        download_and_extract_archive(url, str(root), md5=md5)
    except (OSError, RuntimeError, ValueError) as error:
        raise DataError(f"{root}: could not download {what} ({type(error).__name__}: {error}); "
                        f"this machine may be offline: copy the files there instead") from None


def read_cifar10_binary(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 binary batch: records of 1 label byte then 3x32x32 pixel bytes."""
    raw = np.fromfile(path, dtype=np.uint8)
    record = 1 + 3 * 32 * 32
    if raw.size == 0 or raw.size % record:
        raise DataError(f"{path}: not a CIFAR-10 binary batch (size {raw.size} is not a multiple of {record})")
    rows = raw.reshape(-1, record)
    if rows[:, 0].max() > 9:
        raise DataError(f"{path}: label byte out of range: not a CIFAR-10 binary batch")
    return rows[:, 1:].reshape(-1, 3, 32, 32), rows[:, 0].astype(np.int64)


@DATASETS.register("cifar10")
class CIFAR10(Dataset):
    image_shape = (3, 32, 32)
    num_classes = 10

    @dataclass(frozen=True)
    class Config:
        root: str = "data/external/cifar10"
        download: bool = False

    def load(self) -> ImageSet:
        folder = Path(self.config.root) / "cifar-10-batches-bin"
        if not folder.is_dir() and self.config.download:
            fetch(CIFAR10_URL, Path(self.config.root), CIFAR10_MD5, "CIFAR-10")
        missing = [name for name in CIFAR10_FILES if not (folder / name).is_file()]
        if missing:
            raise DataError(f"{folder}: CIFAR-10 binary files missing ({', '.join(missing)}); "
                            f"set data.options.download: true on a machine with internet, "
                            f"or extract cifar-10-binary.tar.gz into {self.config.root}")
        parts = [read_cifar10_binary(folder / name) for name in CIFAR10_FILES]
        images = torch.from_numpy(np.concatenate([p[0] for p in parts]))
        labels = torch.from_numpy(np.concatenate([p[1] for p in parts]))
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
        from torchvision.datasets import GTSRB as TorchGTSRB  # lazy: torchvision is slow to import

        root = self.config.root
        try:
            parts = [TorchGTSRB(root, split=split, download=self.config.download) for split in ("train", "test")]
        except (RuntimeError, OSError) as error:
            hint = ("the download failed: this machine may be offline" if self.config.download
                    else "set data.options.download: true on a machine with internet, or copy the files there")
            raise DataError(f"{root}: GTSRB not found or unreadable ({error}); {hint}") from None
        arrays, labels = [], []
        for image, label in (pair for part in parts for pair in part):
            arrays.append(np.asarray(image.convert("RGB").resize((32, 32)), dtype=np.uint8))
            labels.append(int(label))
        images = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
        return ImageSet(images, torch.tensor(labels, dtype=torch.int64))
