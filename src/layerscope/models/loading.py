"""Build a model from a spec ``{"class": "pkg.module:Class", "args": {...}}`` and load its weights safely."""

from __future__ import annotations

import importlib
import json
import os
import pickle
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from layerscope.errors import LayerscopeError

__all__ = ["SEED_CNN", "build_model", "load_weights", "model_spec", "parse_model_args"]

SEED_CNN = "layerscope.models.seed_cnn:SeedCNN"


def model_spec(class_path: str = SEED_CNN, **args: Any) -> dict[str, Any]:
    return {"class": class_path, "args": args}


def _import(module_name: str) -> Any:
    """Import ``module_name``; when it is not found, look in the current directory too (as uvicorn and ``python -m``
    do), so a user's own ``mymodels.py`` works from the ``layerscope`` console script."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        top = module_name.split(".")[0]
        if e.name is None or e.name.split(".")[0] != top or cwd in sys.path or "" in sys.path:
            raise
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()
        return importlib.import_module(module_name)


def parse_model_args(pairs: Sequence[str] | None) -> dict[str, Any]:
    """``["num_classes=3", "hidden=[64, 32]", "name=wide"]`` -> ``{"num_classes": 3, "hidden": [64, 32], "name":
    "wide"}``: each value is read as JSON when it parses, else kept as a string."""
    args: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise LayerscopeError(f"--model-arg {pair!r}: write it as name=value, e.g. --model-arg num_classes=3.")
        try:
            args[key] = json.loads(value)
        except json.JSONDecodeError:
            args[key] = value
    return args


def build_model(spec: dict[str, Any]) -> nn.Module:
    """Instantiate ``spec["class"]`` (``"pkg.module:Class"``) with ``spec["args"]``."""
    class_path = str(spec.get("class", ""))
    module_name, _, attr = class_path.partition(":")
    if not module_name or not attr:
        raise LayerscopeError(f"model class {class_path!r} must be written 'pkg.module:Class'.")
    try:
        cls = getattr(_import(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise LayerscopeError(
            f"cannot import model class {class_path!r} ({e}); run layerscope from the directory that holds "
            f"{module_name.split('.')[0]}, or install its package."
        ) from e
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
    state: Any
    try:
        if path.suffix == ".safetensors":
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # safetensors and torch raise many types for a bad file
        first = (str(e).strip().splitlines() or [""])[0]
        if isinstance(e, pickle.UnpicklingError):  # weights_only refused a pickled object that is not tensors
            culprit = re.search(r"GLOBAL (\S+)", str(e))
            what = f" ({culprit.group(1)})" if culprit else ""
            raise LayerscopeError(
                f"{path}: refused, it holds a pickled Python object{what}, not only tensors, and layerscope never "
                "unpickles code. Save model.state_dict() instead (torch.save or safetensors)."
            ) from e
        raise LayerscopeError(f"{path}: cannot read weights ({type(e).__name__}: {first}).") from e
    # a training checkpoint often keeps the state dict under one of these keys
    for key in ("state_dict", "model_state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
            break
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        found = type(state).__name__ if not isinstance(state, dict) else "a dict of other values"
        raise LayerscopeError(f"{path}: expected a state dict of tensors (model.state_dict()), found {found}.")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        lines = str(e).strip().splitlines()
        raise LayerscopeError(
            f"{path}: weights do not fit the model ({' '.join(lines[1:3]).strip() or lines[0]})."
        ) from e
    return model
