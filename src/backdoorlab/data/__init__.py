"""Data sets as in-memory tensors, and the registry that names them in params.yaml."""

from backdoorlab.data.base import DATASETS, Dataset, ImageSet

__all__ = ["DATASETS", "Dataset", "ImageSet"]
