"""Data sets as in-memory tensors, and the registry that names them in params.yaml."""

from backdoorlab.data.base import DATASETS, Dataset, ImageSet
from backdoorlab.registry import import_submodules

import_submodules(__name__)

__all__ = ["DATASETS", "Dataset", "ImageSet"]
