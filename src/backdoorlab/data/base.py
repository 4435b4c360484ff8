"""The in-memory image set every stage passes around, and the data-set registry.

Images are uint8 tensors shaped (N, C, H, W) and labels int64 tensors shaped (N,). Keeping uint8
until the batch is drawn keeps memory small and makes triggers exact pixel edits; models receive
floats in [0, 1] and normalise inside themselves, so attacks and adversarial examples work in
pixel space.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Sequence

import torch

from backdoorlab.registry import DATASETS  # each data set module registers through its base
from backdoorlab.settings import require


@dataclass(frozen=True)
class ImageSet:
    images: torch.Tensor  # uint8, (N, C, H, W)
    labels: torch.Tensor  # int64, (N,)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} "
                             f"{tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must be (N,) and match the images")
        object.__setattr__(self, "labels", self.labels.long())

    def __len__(self) -> int:
        return self.images.shape[0]

    def subset(self, indices: torch.Tensor) -> "ImageSet":
        return ImageSet(self.images[indices], self.labels[indices])

    def to_tensors(self, prefix: str) -> dict[str, torch.Tensor]:
        return {f"{prefix}_images": self.images, f"{prefix}_labels": self.labels}

    @classmethod
    def from_tensors(cls, tensors: dict[str, torch.Tensor], prefix: str) -> "ImageSet":
        return cls(tensors[f"{prefix}_images"], tensors[f"{prefix}_labels"])



@dataclass(frozen=True)
class Pool:
    """A data set as published: every labelled image, in the reader's order, and which of them form
    its official test part (None where it has none, e.g. a single image tree). ``prepare`` either
    pools all of them and draws its own test split (``data.split: pooled``) or keeps the official
    test part as the test split, as published numbers are measured (``official``)."""

    data: ImageSet
    official_test: torch.Tensor | None = None  # bool (N,): True for the official test part

    def __post_init__(self) -> None:
        if self.official_test is not None and self.official_test.shape != (len(self.data),):
            raise ValueError("official_test must be a boolean mask over the pool")

    @classmethod
    def with_test_from(cls, data: ImageSet, first_test: int) -> "Pool":
        """A pool whose images from index ``first_test`` on are the official test part."""
        return cls(data, torch.arange(len(data)) >= first_test)

    @classmethod
    def of_parts(cls, train: ImageSet, test: ImageSet) -> "Pool":
        """The training part, then the official test part."""
        both = ImageSet(torch.cat([train.images, test.images]), torch.cat([train.labels, test.labels]))
        return cls.with_test_from(both, len(train))

    def parts(self) -> tuple[ImageSet, ImageSet] | None:
        """The training and the official test part, or None when the data set has no test part."""
        if self.official_test is None or not bool(self.official_test.any()):
            return None
        return (self.data.subset(torch.nonzero(~self.official_test).flatten()),
                self.data.subset(torch.nonzero(self.official_test).flatten()))


def class_subset(data: ImageSet, classes: Sequence[int]) -> ImageSet:
    """The images of ``classes``, relabelled 0..len(classes)-1 in the order given (a paradigm's
    source or downstream task)."""
    require(len(set(classes)) == len(classes) > 0, "classes", f"must be distinct and non-empty, got {list(classes)}")
    relabel = torch.full((int(data.labels.max()) + 1,), -1, dtype=torch.long)
    for new, old in enumerate(classes):
        require(0 <= old < len(relabel), "classes", f"class {old} is not in the data")
        relabel[old] = new
    keep = torch.nonzero(relabel[data.labels] >= 0).flatten()
    return ImageSet(data.images[keep], relabel[data.labels[keep]])


class Dataset:
    """A source of labelled images. Subclasses declare their shape (a class constant, or a
    property of their config where the params choose it) so params can be validated before any
    file is read, and ``load`` returns the pool that ``prepare`` splits (with its official test part, if any)."""

    image_shape: tuple[int, int, int]
    num_classes: int
    Config: ClassVar[type]

    def __init__(self, config: object) -> None:
        self.config = config

    def load(self) -> Pool:
        raise NotImplementedError


