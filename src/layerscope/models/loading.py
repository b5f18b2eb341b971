"""Build a model from a spec ``{"class": "pkg.module:Class", "args": {...}}`` and load its weights safely."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from layerscope.errors import LayerscopeError

__all__ = ["build_model", "load_weights", "model_spec"]

SEED_CNN = "layerscope.models.seed_cnn:SeedCNN"


def model_spec(class_path: str = SEED_CNN, **args: Any) -> dict[str, Any]:
    return {"class": class_path, "args": args}


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Instantiate ``spec["class"]`` (``"pkg.module:Class"``) with ``spec["args"]``."""
    class_path = str(spec.get("class", ""))
    module_name, _, attr = class_path.partition(":")
    if not module_name or not attr:
        raise LayerscopeError(f"model class {class_path!r} must be written 'pkg.module:Class'.")
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise LayerscopeError(f"cannot import model class {class_path!r} ({e}); is its package installed?") from e
    try:
        model = cls(**spec.get("args", {}))
    except TypeError as e:
        raise LayerscopeError(f"cannot build {class_path} with arguments {spec.get('args', {})}: {e}") from e
    if not isinstance(model, nn.Module):
        raise LayerscopeError(f"{class_path} is not a torch.nn.Module.")
    return model


def load_weights(model: nn.Module, path: str | os.PathLike[str]) -> nn.Module:
    """Load a ``.safetensors`` file, or a ``.pt`` state dict with ``weights_only=True`` (never unpickling code)."""
    path = Path(path)
    if not path.is_file():
        raise LayerscopeError(f"{path}: no such weights file.")
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors and torch raise many types for a bad file
        raise LayerscopeError(f"{path}: cannot read weights ({type(e).__name__}: {e}).") from e
    if not isinstance(state, dict):
        raise LayerscopeError(f"{path}: expected a state dict of tensors, found {type(state).__name__}.")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise LayerscopeError(
            f"{path}: weights do not fit the model ({' '.join(first[1:3]).strip() or first[0]})."
        ) from e
    return model
