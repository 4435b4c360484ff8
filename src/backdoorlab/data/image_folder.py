"""Images in a folder tree, ``root/<class>/**/*.{png,jpg,jpeg,ppm,bmp}``: the way most people hold data.

Classes are the sub-folders of ``root`` in sorted order (class 0 is the first name), as in
torchvision's ``ImageFolder``; a class folder may be a symbolic link, and images may sit at any
depth below it (Tiny-ImageNet keeps them in ``<class>/images/``), with suffixes in any case
(``.JPG``); hidden files (``.DS_Store``, macOS's ``._x.jpg``) are skipped. Every image is
converted to the declared channels and resized to ``image_size`` x ``image_size`` (aspect ratio
not kept, as ``Resize((s, s))``). An optional ``test_root`` with the same class folders is the
data set's official test part.

Decoding is the slow part, so it is done once: one process per core decodes a chunk of files at a
time (a small image costs more Python than decoding, so threads would wait on the GIL: measured
slower than one thread), JPEGs are decoded straight at a reduced scale when they are much larger
than the target (``draft``), and the result is cached as a tensors file keyed by every file's
path, size and modification time and by the declared size, so a changed, added or removed image
means a fresh decode and nothing stale is ever read.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from backdoorlab.data.base import DATASETS, Dataset, ImageSet, Pool
from backdoorlab.errors import DataError
from backdoorlab.io import load_tensors, save_tensors
from backdoorlab.settings import check_positive, require

EXTENSIONS = (".png", ".jpg", ".jpeg", ".ppm", ".bmp")
CHUNK = 1000  # files per decoding task: large enough that a task's overhead does not count
LAYOUT = "one sub-folder of images per class (root/<class>/*.jpg)"


def class_folders(root: Path) -> list[str]:
    """The class names: ``root``'s sub-folders, sorted."""
    if not root.is_dir():
        raise DataError(f"{root}: folder not found; put {LAYOUT} there")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir() and not entry.name.startswith("."))
    if len(classes) < 2:
        raise DataError(f"{root}: {len(classes)} class folder(s); a classifier needs {LAYOUT}, at least two")
    return classes


def image_files(folder: Path) -> list[Path]:
    """Every image below ``folder``, at any depth, in sorted order; hidden files and folders skipped."""
    def hidden(path: Path) -> bool:
        return any(part.startswith(".") for part in path.relative_to(folder).parts)

    return sorted(path for path in folder.rglob("*")
                  if path.suffix.lower() in EXTENSIONS and not hidden(path) and path.is_file())


def named(names: Sequence[str], limit: int = 5) -> str:
    """A short list of folder names for an error line."""
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def class_tree(root: Path, classes: Sequence[str], reference: Path | None = None) -> tuple[list[Path], list[int]]:
    """The images of a class tree with ``classes`` (those of the tree at ``reference``, if given) as
    its labels; a class without images, or a class folder only one of the two trees has, is an error."""
    found = class_folders(root)
    if reference is not None:
        extra, missing = sorted(set(found) - set(classes)), sorted(set(classes) - set(found))
        require(not extra, str(root), f"class folder(s) {named(extra)} are not in {reference}")
        require(not missing, str(root), f"lacks class folder(s) {named(missing)} that {reference} has")
    files: list[Path] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        images = image_files(root / name)
        if not images:
            raise DataError(f"{root / name}: no images ({', '.join(EXTENSIONS)}) in this class folder")
        files += images
        labels += [label] * len(images)
    return files, labels


def decode_image(path: Path, size: int, channels: int) -> np.ndarray:
    """One file -> uint8 (channels, size, size)."""
    from PIL import Image, UnidentifiedImageError  # lazy: only folder data sets decode images

    mode = "L" if channels == 1 else "RGB"
    try:
        with Image.open(path) as image:
            if image.format == "JPEG":
                image.draft(mode, (size, size))  # decode at 1/2, 1/4 or 1/8 scale when that is still >= size
            image = image.convert(mode)
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.BILINEAR)
            array = np.asarray(image, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as error:
        raise DataError(f"{path}: not a readable image ({error})") from None
    return array[None] if channels == 1 else array.transpose(2, 0, 1)


def decode_chunk(files: Sequence[Path], size: int, channels: int) -> np.ndarray:
    """Files -> uint8 (N, channels, size, size)."""
    out = np.empty((len(files), channels, size, size), dtype=np.uint8)
    for index, path in enumerate(files):
        out[index] = decode_image(path, size, channels)
    return out


def decode_images(files: Sequence[Path], size: int, channels: int, workers: int | None = None) -> torch.Tensor:
    """Every file -> uint8 (N, channels, size, size), in chunks over ``workers`` processes (default:
    one per core). On Linux they are forked, so no worker imports torch again."""
    workers = workers or os.cpu_count() or 1
    chunks = [files[start:start + CHUNK] for start in range(0, len(files), CHUNK)]
    decode = functools.partial(decode_chunk, size=size, channels=channels)
    if workers == 1 or len(chunks) == 1:
        return torch.from_numpy(np.concatenate([decode(chunk) for chunk in chunks]))
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with ProcessPoolExecutor(min(workers, len(chunks)), mp_context=context) as pool:
        return torch.from_numpy(np.concatenate(list(pool.map(decode, chunks))))


def cache_key(files: Sequence[Path], size: int, channels: int) -> str:
    """A digest of what the decoded tensors depend on: each file's path, size and mtime, the shape."""
    digest = hashlib.sha256(f"{size}x{channels}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"\0{path.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def load_files(files: Sequence[Path], labels: Sequence[int], size: int, channels: int,
               cache_dir: str | None) -> ImageSet:
    """The labelled files decoded (from the cache when they have been decoded before)."""
    cache = Path(cache_dir) / f"images-{cache_key(files, size, channels)}.safetensors" if cache_dir else None
    if cache is not None and cache.is_file():
        try:
            return ImageSet.from_tensors(load_tensors(cache), "pool")
        except (DataError, KeyError, ValueError):
            pass  # a damaged cache file is decoded again and replaced
    pool = ImageSet(decode_images(files, size, channels), torch.tensor(labels, dtype=torch.int64))
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        save_tensors(cache, pool.to_tensors("pool"))
    return pool


@dataclass(frozen=True)
class FolderConfig:
    """What every folder-backed data set declares: the size images are brought to, where decoded
    tensors are cached."""

    image_size: int = 32
    channels: int = 3  # 1: greyscale, 3: RGB
    cache_dir: str | None = "data/cache"  # None: decode on every read

    def check(self, key: str) -> None:
        check_positive(self, key, "image_size")
        require(self.channels in (1, 3), f"{key}.channels", f"must be 1 or 3, got {self.channels}")


class FolderDataset(Dataset):
    """A data set whose images are decoded from files to the shape its ``FolderConfig`` declares."""

    @property
    def image_shape(self) -> tuple[int, int, int]:  # type: ignore[override]
        return (self.config.channels, self.config.image_size, self.config.image_size)


@DATASETS.register("image_folder")
class ImageFolder(FolderDataset):
    @dataclass(frozen=True)
    class Config(FolderConfig):
        root: str = "data/external/images"
        # A second tree with the same class folders: the data set's official test part. With
        # data.split: official it is the test split; with pooled its images join the pool.
        test_root: str | None = None
        # The number of class folders. Left out, it is counted when params are read (so the
        # folder must exist wherever a stage runs); set it to read params without the images.
        num_classes: int | None = None

        def check(self, key: str) -> None:
            super().check(key)
            if self.num_classes is not None:
                require(self.num_classes >= 2, f"{key}.num_classes", f"must be >= 2, got {self.num_classes}")

    @cached_property
    def num_classes(self) -> int:  # type: ignore[override]
        return self.config.num_classes or len(class_folders(Path(self.config.root)))

    def load(self) -> Pool:
        cfg = self.config
        classes = class_folders(Path(cfg.root))
        require(len(classes) == self.num_classes, "data.options.num_classes",
                f"{self.num_classes} given, but {cfg.root} has {len(classes)} class folders")
        files, labels = class_tree(Path(cfg.root), classes)
        if cfg.test_root is None:
            return Pool(load_files(files, labels, cfg.image_size, cfg.channels, cfg.cache_dir))
        test_files, test_labels = class_tree(Path(cfg.test_root), classes, reference=Path(cfg.root))
        data = load_files(files + test_files, labels + test_labels, cfg.image_size, cfg.channels, cfg.cache_dir)
        return Pool.with_test_from(data, len(files))
