"""GTSRB (German traffic signs, 43 classes) via torchvision's reader, resized to 32x32."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet, Pool
from backdoorlab.data.files import FilesConfig
from backdoorlab.errors import DataError


@DATASETS.register("gtsrb")
class GTSRB(Dataset):
    image_shape = (3, 32, 32)
    num_classes = 43

    @dataclass(frozen=True)
    class Config(FilesConfig):
        root: str = "data/external/gtsrb"

    def load(self) -> Pool:
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
        return Pool.with_test_from(ImageSet(images, torch.tensor(labels, dtype=torch.int64)), len(parts[0]))
