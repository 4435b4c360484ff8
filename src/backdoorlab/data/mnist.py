"""MNIST (handwritten digits) from its four original gzipped IDX files, Fashion-MNIST's format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backdoorlab.data.base import DATASETS, Dataset, Pool
from backdoorlab.data.fashion_mnist import IDX_FILES, read_28x28
from backdoorlab.data.files import FilesConfig, fetch_missing, require_files

MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"  # torchvision's mirror of LeCun's files
MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


@DATASETS.register("mnist")
class MNIST(Dataset):
    image_shape = (1, 28, 28)
    num_classes = 10

    @dataclass(frozen=True)
    class Config(FilesConfig):
        root: str = "data/external/mnist"

    def load(self) -> Pool:
        root = Path(self.config.root)
        names = [name for pair in IDX_FILES.values() for name in pair]
        fetch_missing(self.config, MIRROR, MD5, names, "MNIST")
        require_files(root, names, "MNIST", "the four *-ubyte.gz files")
        return read_28x28(root)
