"""Data loading: the embedded subset, the original IDX and CIFAR-10 binary formats, bad files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch

from backdoorlab.data import DATASETS
from backdoorlab.data.fashion_mnist import IDX_FILES
from backdoorlab.errors import DataError

from conftest import EMBEDDED, fashion_pool


def load(name: str, **options):
    cls = DATASETS.get(name, "data.dataset")
    return cls(cls.Config(**options)).load().data


def test_embedded_subset_is_balanced_real_fashion_mnist():
    pool = fashion_pool()
    assert pool.images.shape[1:] == (1, 28, 28) and pool.images.dtype == torch.uint8
    counts = torch.bincount(pool.labels, minlength=10)
    assert counts.min() == counts.max() > 1000
    assert 0.2 < pool.images.float().mean().item() / 255 < 0.4  # real images, not noise


def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_idx_folder_is_read_in_official_order(tmp_path):
    rng = np.random.default_rng(0)
    for i, (images, labels) in enumerate(IDX_FILES.values()):
        write_idx(tmp_path / images, rng.integers(0, 256, (3 + i, 28, 28)))
        write_idx(tmp_path / labels, np.full(3 + i, i))
    pool = load("fashion_mnist", path=str(tmp_path))
    assert len(pool) == 7 and pool.labels.tolist() == [0, 0, 0, 1, 1, 1, 1]


@pytest.mark.parametrize("content", [b"", b"not an archive at all"])
def test_corrupt_embedded_file_names_the_file(tmp_path, content):
    bad = tmp_path / "broken.npz"
    bad.write_bytes(content)
    with pytest.raises(DataError, match="broken.npz"):
        load("fashion_mnist", path=str(bad))


def test_missing_file_names_the_file(tmp_path):
    with pytest.raises(DataError, match="nowhere.npz"):
        load("fashion_mnist", path=str(tmp_path / "nowhere.npz"))


def test_cifar10_binary_reader_on_small_local_files(tmp_path):
    folder = tmp_path / "cifar-10-batches-bin"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for i, name in enumerate(names):
        records = np.concatenate([np.full((2, 1), i), rng.integers(0, 256, (2, 3072))], axis=1)
        records.astype(np.uint8).tofile(folder / name)
    pool = load("cifar10", root=str(tmp_path))
    assert pool.images.shape == (12, 3, 32, 32)
    assert pool.labels.tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_cifar10_missing_files_give_a_clear_offline_message(tmp_path):
    with pytest.raises(DataError, match="download: true"):
        load("cifar10", root=str(tmp_path))


def test_cifar10_download_offline_fails_with_a_clear_message(tmp_path, monkeypatch):
    import torchvision.datasets.utils as utils

    def offline(*args, **kwargs):
        raise OSError("Name or service not known")

    monkeypatch.setattr(utils, "download_and_extract_archive", offline)
    with pytest.raises(DataError, match="could not download CIFAR-10.*offline"):
        load("cifar10", root=str(tmp_path), download=True)


def test_embedded_file_is_the_committed_one():
    assert EMBEDDED.stat().st_size < 8_000_000
