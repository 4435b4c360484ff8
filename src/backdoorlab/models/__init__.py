"""Image classifiers, built by name from params.yaml's ``model`` section."""

from backdoorlab.models.base import MODELS, ModelSpec, build_model, load_model, save_model
from backdoorlab.registry import import_submodules

import_submodules(__name__)

__all__ = ["MODELS", "ModelSpec", "build_model", "load_model", "save_model"]
