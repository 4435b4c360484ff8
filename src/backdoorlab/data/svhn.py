"""SVHN (street-view house numbers, 32x32 digits) from its cropped-digit ``.mat`` files.

The files are MATLAB v5 archives, read with SciPy (plain arrays: nothing is unpickled). SVHN
labels the digit 0 as 10; it becomes class 0 here, as in torchvision. The 531,131 ``extra``
images (easier ones) join the pool only when asked for.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet, Pool
from backdoorlab.data.files import FilesConfig, fetch_missing, require_files
from backdoorlab.errors import DataError

URL = "http://ufldl.stanford.edu/housenumbers/"
MD5 = {
    "train_32x32.mat": "e26dedcc434d2e4c54c9b2d4a06d8373",
    "test_32x32.mat": "eb5a983be6a315427106f1b164d9cef3",
    "extra_32x32.mat": "a93ce644f1a588dc4d68dda5feec44a7",
}


def read_svhn_mat(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One cropped-digit file: X (32, 32, 3, N) and y (N, 1) in 1..10 -> (N, 3, 32, 32) and 0..9."""
    from scipy.io import loadmat  # lazy: only SVHN needs SciPy
    from scipy.io.matlab import MatReadError

    try:
        archive = loadmat(path)
        images, labels = archive["X"], archive["y"].reshape(-1).astype(np.int64)
    except (OSError, ValueError, KeyError, NotImplementedError, MatReadError) as error:
        raise DataError(f"{path}: not an SVHN cropped-digit .mat file ({error})") from None
    if images.shape[:3] != (32, 32, 3) or images.shape[3] != len(labels) or labels.min() < 1 or labels.max() > 10:
        raise DataError(f"{path}: expected X (32, 32, 3, N) and labels 1..10, got X {images.shape}")
    return images.transpose(3, 2, 0, 1), labels % 10


@DATASETS.register("svhn")
class SVHN(Dataset):
    image_shape = (3, 32, 32)
    num_classes = 10

    @dataclass(frozen=True)
    class Config(FilesConfig):
        root: str = "data/external/svhn"
        extra: bool = False  # add the 531,131 extra training images to the pool

    def load(self) -> Pool:
        root = Path(self.config.root)
        names = ["train_32x32.mat", "test_32x32.mat"] + (["extra_32x32.mat"] if self.config.extra else [])
        fetch_missing(self.config, URL, MD5, names, "SVHN")
        require_files(root, names, "SVHN", "the cropped-digit files " + ", ".join(names))
        parts = [read_svhn_mat(root / name) for name in names]
        data = ImageSet(torch.from_numpy(np.ascontiguousarray(np.concatenate([p[0] for p in parts]))),
                        torch.from_numpy(np.concatenate([p[1] for p in parts])))
        official_test = torch.cat([torch.full((len(labels),), name == "test_32x32.mat")
                                   for name, (_, labels) in zip(names, parts)])
        return Pool(data, official_test)
