"""Which model classes a Run may import: layerscope's own, what the user trusted on the command line, and what the
allow-list names. Kept apart from the loading itself (models/loading.py), so that checking a Run before serving it
imports no torch.
"""

from __future__ import annotations

import fnmatch
import os
from pathlib import Path
from typing import Any

from layerscope.errors import LayerscopeError

__all__ = ["TRUST_ENV", "TRUST_FILE_NAME", "check_trusted", "is_trusted", "trust_file"]

TRUST_FILE_NAME = "trusted-models"
TRUST_ENV = "LAYERSCOPE_TRUSTED_MODELS"
_OWN = "layerscope."


def trust_file() -> Path:
    """The allow-list of model classes that Runs may import without ``--trust-model-code``: one pattern per line
    (``mymodels:Net``, ``mycompany.*``; fnmatch globs over 'module:Class'), ``#`` starts a comment."""
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "layerscope" / TRUST_FILE_NAME


def _allow_list() -> list[str]:
    patterns = [p.strip() for p in os.environ.get(TRUST_ENV, "").split(",") if p.strip()]
    try:
        lines = trust_file().read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        lines = []
    patterns += [line.split("#", 1)[0].strip() for line in lines]
    return [p for p in patterns if p]


def is_trusted(class_path: str, trusted: bool = False) -> bool:
    """True when ``class_path`` may be imported: layerscope's own models, anything when the user said so
    (``trusted``), else what the allow-list (``trust_file()`` or $LAYERSCOPE_TRUSTED_MODELS) names."""
    if trusted or class_path.startswith(_OWN):
        return True
    return any(
        fnmatch.fnmatchcase(class_path, p) or fnmatch.fnmatchcase(class_path.split(":")[0], p) for p in _allow_list()
    )


def check_trusted(spec: dict[str, Any], trusted: bool = False) -> None:
    """The one-line refusal to import a Run's model class that nobody trusted; nothing is imported or run."""
    class_path = str(spec.get("class", ""))
    if not is_trusted(class_path, trusted):
        module = class_path.partition(":")[0]
        raise LayerscopeError(
            f"this Run's model is {class_path}, not layerscope's own: opening it would import and run the code of "
            f"module {module!r}. If you trust it, pass --trust-model-code (or add {class_path!r} to {trust_file()})."
        )
