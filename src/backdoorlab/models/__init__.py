"""Image classifiers, built by name from params.yaml's ``model`` section."""

from backdoorlab.models.base import MODELS, ModelSpec, build_model, load_model, save_model

__all__ = ["MODELS", "ModelSpec", "build_model", "load_model", "save_model"]
