"""STL-10 (ten classes, 96x96 colour images) from its binary release's labelled part.

Each ``*_X.bin`` holds uint8 images of 3 x 96 x 96 bytes stored column-major (so each channel is
transposed), each ``*_y.bin`` one label byte per image in 1..10. The 100,000 unlabelled images
are not read: every split of this pipeline needs labels. ``image_size`` below 96 (e.g. 32, the
models' native size) resizes once, when the data are prepared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet, Pool
from backdoorlab.data.files import FilesConfig, fetch_archive, require_files, resize_images
from backdoorlab.errors import DataError
from backdoorlab.settings import check_positive

URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
MD5 = "91f7769df0f17e558f3565bffb0c7dfb"
SIDE = 96


def read_stl10_split(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images = np.fromfile(folder / f"{split}_X.bin", dtype=np.uint8)
    labels = np.fromfile(folder / f"{split}_y.bin", dtype=np.uint8).astype(np.int64)
    if images.size != len(labels) * 3 * SIDE * SIDE or len(labels) == 0 or labels.min() < 1 or labels.max() > 10:
        raise DataError(f"{folder}: {split}_X.bin / {split}_y.bin are not an STL-10 split "
                        f"({images.size} image bytes for {len(labels)} labels in 1..10)")
    return images.reshape(-1, 3, SIDE, SIDE).transpose(0, 1, 3, 2), labels - 1


@DATASETS.register("stl10")
class STL10(Dataset):
    num_classes = 10

    @dataclass(frozen=True)
    class Config(FilesConfig):
        root: str = "data/external/stl10"
        image_size: int = SIDE  # resized once at prepare time when smaller

        def check(self, key: str) -> None:
            check_positive(self, key, "image_size")

    @property
    def image_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (3, self.config.image_size, self.config.image_size)

    def load(self) -> Pool:
        root = Path(self.config.root)
        folder = root / "stl10_binary"
        fetch_archive(self.config, folder, URL, MD5, "STL-10")
        require_files(folder, ["train_X.bin", "train_y.bin", "test_X.bin", "test_y.bin"], "STL-10 binary",
                      f"the contents of stl10_binary.tar.gz (extract it into {root})")
        parts = [read_stl10_split(folder, split) for split in ("train", "test")]
        images = torch.from_numpy(np.ascontiguousarray(np.concatenate([p[0] for p in parts])))
        data = ImageSet(resize_images(images, self.config.image_size),
                        torch.from_numpy(np.concatenate([p[1] for p in parts])))
        return Pool.with_test_from(data, len(parts[0][1]))
