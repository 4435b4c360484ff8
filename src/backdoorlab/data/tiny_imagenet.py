"""Tiny-ImageNet-200 (64x64, 200 classes) through the image-folder reader.

Its training split is a class tree (``train/<wnid>/images/*.JPEG``); its validation split is one
folder of images with their classes in ``val/val_annotations.txt``: the official test part here
(the test split has no labels), as published Tiny-ImageNet numbers are measured on it. Classes are the sorted wnids, as torchvision's ``ImageFolder`` numbers them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from backdoorlab.data.base import DATASETS, Pool
from backdoorlab.data.files import FilesConfig, fetch_archive
from backdoorlab.data.image_folder import FolderConfig, FolderDataset, class_folders, class_tree, load_files
from backdoorlab.errors import DataError

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"


def annotated_files(folder: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    """The validation images and labels listed in ``val_annotations.txt`` (file, wnid, box)."""
    index = {name: i for i, name in enumerate(classes)}
    annotations = folder / "val_annotations.txt"
    files, labels = [], []
    for number, line in enumerate(annotations.read_text().splitlines(), 1):
        fields = line.split("\t")
        if len(fields) < 2 or fields[1] not in index:
            raise DataError(f"{annotations}:{number}: expected '<file>\\t<wnid>...' with a wnid of train/")
        files.append(folder / "images" / fields[0])
        labels.append(index[fields[1]])
    return files, labels


@DATASETS.register("tiny_imagenet")
class TinyImageNet(FolderDataset):
    num_classes = 200

    @dataclass(frozen=True)
    class Config(FolderConfig, FilesConfig):
        root: str = "data/external/tiny-imagenet"
        image_size: int = 64

    def load(self) -> Pool:
        cfg = self.config
        folder = Path(cfg.root) / "tiny-imagenet-200"
        fetch_archive(cfg, folder, URL, MD5, "Tiny-ImageNet")
        if not (folder / "train").is_dir() or not (folder / "val" / "val_annotations.txt").is_file():
            raise DataError(f"{folder}: Tiny-ImageNet's train/ and val/val_annotations.txt missing; set "
                            f"data.options.download: true on a machine with internet, or extract "
                            f"tiny-imagenet-200.zip into {cfg.root}")
        classes = class_folders(folder / "train")
        if len(classes) != self.num_classes:
            raise DataError(f"{folder / 'train'}: {len(classes)} class folders, Tiny-ImageNet has 200")
        files, labels = class_tree(folder / "train", classes)
        val_files, val_labels = annotated_files(folder / "val", classes)
        data = load_files(files + val_files, labels + val_labels, cfg.image_size, cfg.channels, cfg.cache_dir)
        return Pool.with_test_from(data, len(files))
