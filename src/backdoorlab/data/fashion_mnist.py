"""Fashion-MNIST (Zalando, MIT license), from the embedded subset or the original IDX files.

The default pipeline reads ``data/embedded/fashion_mnist_subset.npz``, a balanced subset built by
``scripts/build_embedded_dataset.py`` from Debian's ``dataset-fashion-mnist`` package. Pointing
``data.fashion_mnist.path`` at a folder with the four original ``*-ubyte.gz`` files uses all 70,000
images instead.
"""

from __future__ import annotations

import gzip
import struct
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet, Pool
from backdoorlab.errors import DataError

IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
OFFICIAL_TRAIN_SIZE = 60_000  # the MNIST family's train split; t10k follows it


def read_idx(path: Path) -> np.ndarray:
    """Read one gzipped IDX file (the MNIST family's format) into a uint8 array."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise ValueError("bad magic number")
        shape = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data.reshape(shape)
    except (OSError, EOFError, ValueError, struct.error) as error:
        raise DataError(f"{path}: not a valid gzipped IDX file ({error})") from None


def read_idx_folder(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All images and labels of an IDX folder, the official train split first, and which are t10k's."""
    images, labels = [], []
    for image_file, label_file in IDX_FILES.values():
        images.append(read_idx(folder / image_file))
        labels.append(read_idx(folder / label_file))
    official_test = np.arange(sum(map(len, labels))) >= len(labels[0])
    return np.concatenate(images), np.concatenate(labels), official_test


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """An embedded subset; its ``source_index`` (each image's index in the official train + t10k
    order), when present, tells which images come from the official test split."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with np.load(path, allow_pickle=False) as archive:
            source = archive["source_index"] if "source_index" in archive.files else None
            official_test = None if source is None else source >= OFFICIAL_TRAIN_SIZE
            return archive["images"], archive["labels"], official_test
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: not a valid embedded data set ({error})") from None


def read_28x28(path: Path) -> Pool:
    """A 28x28 greyscale set, from a folder of the four IDX files or from an embedded ``.npz``."""
    images, labels, official_test = read_idx_folder(path) if path.is_dir() else read_npz(path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or len(labels) != len(images):
        raise DataError(f"{path}: expected 28x28 images with one label each, "
                        f"got images {images.shape}, labels {labels.shape}")
    data = ImageSet(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64)))
    return Pool(data, None if official_test is None else torch.from_numpy(official_test))


@DATASETS.register("fashion_mnist")
class FashionMNIST(Dataset):
    image_shape = (1, 28, 28)
    num_classes = 10

    @dataclass(frozen=True)
    class Config:
        path: str = "data/embedded/fashion_mnist_subset.npz"

    def load(self) -> Pool:
        return read_28x28(Path(self.config.path))
