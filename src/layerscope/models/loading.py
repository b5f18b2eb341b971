"""Build a model from a spec ``{"class": "pkg.module:Class", "args": {...}}`` and load its weights safely."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import json
import os
import pickle
import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from layerscope.errors import LayerscopeError
from layerscope.trust import check_trusted, is_trusted, trust_file

__all__ = [
    "SEED_CNN",
    "build_model",
    "check_trusted",
    "is_trusted",
    "load_weights",
    "model_spec",
    "parse_model_args",
    "trust_file",
]

SEED_CNN = "layerscope.models.seed_cnn:SeedCNN"


def model_spec(class_path: str = SEED_CNN, **args: Any) -> dict[str, Any]:
    return {"class": class_path, "args": args}


@contextlib.contextmanager
def _current_directory_on_path(search: bool) -> Iterator[None]:
    """With ``search``, the current directory is on ``sys.path`` for the import (then taken off again), as ``python
    -m`` would have it: only ever for a model the user named or trusted on this command line."""
    cwd = os.getcwd()
    add = search and cwd not in sys.path and "" not in sys.path
    if add:
        sys.path.insert(0, cwd)
        importlib.invalidate_caches()
    try:
        yield
    finally:
        if add:
            with contextlib.suppress(ValueError):
                sys.path.remove(cwd)


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


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def build_model(spec: dict[str, Any], trusted: bool = False, search_cwd: bool | None = None) -> nn.Module:
    """Instantiate ``spec["class"]`` (``"pkg.module:Class"``) with ``spec["args"]``.

    The class is imported only when trusted (``is_trusted``): layerscope's own, ``trusted=True`` (the user said so:
    ``--model`` or ``--trust-model-code`` on the command line), or on the allow-list. It must be a subclass of
    ``nn.Module`` before anything is called. The current directory is searched only when ``search_cwd`` (default:
    when ``trusted``), never for a class named only by a Run's manifest."""
    class_path = str(spec.get("class", ""))
    module_name, _, attr = class_path.partition(":")
    if not module_name or not attr:
        raise LayerscopeError(f"model class {class_path!r} must be written 'pkg.module:Class'.")
    check_trusted(spec, trusted)
    args = spec.get("args", {})
    if not isinstance(args, dict):
        raise LayerscopeError(f"the arguments of model class {class_path} must be an object of name: value.")
    try:
        with _current_directory_on_path(trusted if search_cwd is None else search_cwd):
            cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as e:
        raise LayerscopeError(
            f"cannot import model class {class_path!r} ({e}); run layerscope from the directory that holds "
            f"{module_name.split('.')[0]}, or install its package."
        ) from e
    if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
        raise LayerscopeError(f"{class_path} is not a torch.nn.Module subclass; nothing was called.")
    try:
        model = cls(**args)
    except (TypeError, ValueError, RuntimeError) as e:  # arguments it does not take, or values it refuses
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise LayerscopeError(f"cannot build {class_path} with arguments {_shown(args)}: {first}") from e
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
    state = _unwrapped(state, set(model.state_dict()))
    _check_names(path, state, set(model.state_dict()))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:  # the names fit (checked above): a tensor of another shape
        lines = str(e).strip().splitlines()
        raise LayerscopeError(
            f"{path}: weights do not fit the model ({' '.join(lines[1:3]).strip() or lines[0]})."
        ) from e
    return model


# what a wrapper puts before every name of the model it wraps: DataParallel and DistributedDataParallel, torch.compile
_WRAPPERS = ("module.", "_orig_mod.")


def _unwrapped(state: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """``state`` with a wrapper's prefix taken off its names, where every name has it and that makes them the
    model's; else as it is."""
    for prefix in _WRAPPERS:
        if state and all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if set(stripped) == expected:
                return stripped
    return state


def _few(names: list[str], k: int = 3) -> str:
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def _check_names(path: Path, state: dict[str, Any], expected: set[str]) -> None:
    """One line that says which tensor names the file and the model do not share, and what to do."""
    missing, extra = sorted(expected - set(state)), sorted(set(state) - expected)
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} of the model's tensors are not in the file ({_few(missing)})")
    if extra:
        parts.append(f"{len(extra)} of the file's are not the model's ({_few(extra)})")
    prefix = os.path.commonprefix(sorted(state)).rpartition(".")[0]
    hint = (
        f"; every name in the file starts with {prefix + '.'!r}: save the wrapped model's own state_dict()"
        if prefix and not any(k.startswith(prefix + ".") for k in expected)
        else "; check --model and its --model-arg values against the model that was saved"
    )
    raise LayerscopeError(f"{path}: weights do not fit the model: {' and '.join(parts)}{hint}.")
