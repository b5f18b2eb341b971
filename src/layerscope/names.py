"""Every name that comes from outside (a Run's manifest, an NN_data.json file, the command line, a page's request) and
may become part of a file path or be shown to a user is checked here, in one place.

Two kinds of name:

- **path names** (layers, projection methods): they become directory and file names inside a Run, so they are plain
  names: letters, digits, ``_ . + -``, not starting with a dot, at most 128 characters. Dotted ``named_modules()``
  names (``layer1.0.conv1``, ``blocks.3.attn``) and Keras names (``dense_1``) pass; ``../x``, ``a/b``, ``.hidden``,
  a NUL byte or a 300-character name do not.
- **labels** (group and ablation names): shown, never used as paths: 1 to 100 printable characters.

Numbers that index into arrays (units, image indices) are checked by ``check_index``: whole numbers (not bools),
within ``0 .. count - 1``.
"""

from __future__ import annotations

import re
from typing import Any

from layerscope.errors import LayerscopeError

__all__ = ["MAX_LABEL", "MAX_NAME", "check_index", "check_label", "check_path_name", "is_path_name"]

MAX_NAME = 128
MAX_LABEL = 100
_PATH_NAME = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9_.+\-]{{0,{MAX_NAME - 1}}}")


def _shown(value: Any) -> str:
    """``value`` as a message can quote it: repr, cut to 60 characters."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def is_path_name(value: Any) -> bool:
    """True when ``value`` may be used as a file or directory name inside a Run."""
    return isinstance(value, str) and _PATH_NAME.fullmatch(value) is not None


def check_path_name(value: Any, what: str = "layer name") -> str:
    """``value`` if it is a plain name a Run can store files under, else a one-line ``LayerscopeError``."""
    if is_path_name(value):
        return str(value)
    if not isinstance(value, str):
        reason = f"is a {type(value).__name__}, not a string"
    elif not value:
        reason = "is empty"
    elif len(value) > MAX_NAME:
        reason = f"is {len(value)} characters long (at most {MAX_NAME})"
    else:
        reason = "is not a plain name (letters, digits and _ . + - only, not starting with a dot)"
    raise LayerscopeError(f"{what} {_shown(value)} {reason}; it cannot be used as a file name inside a Run.")


def check_label(value: Any, what: str = "name") -> str:
    """A group or ablation name: stripped, 1 to ``MAX_LABEL`` printable characters."""
    if not isinstance(value, str) or not value.strip():
        raise LayerscopeError(f"a {what} must be a non-empty text; give one.")
    text = value.strip()
    if len(text) > MAX_LABEL:
        raise LayerscopeError(f"the {what} {_shown(text)} is {len(text)} characters long; keep it to {MAX_LABEL}.")
    if not text.isprintable():
        raise LayerscopeError(f"the {what} {_shown(text)} holds control characters; use printable text only.")
    return text


def check_index(value: Any, count: int, what: str = "unit") -> int:
    """``value`` as an int in ``0 .. count - 1``, else a one-line ``LayerscopeError`` that gives the range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise LayerscopeError(f"{what} {_shown(value)} is not a whole number; give one from 0 to {count - 1}.")
    if not 0 <= value < count:
        if count <= 0:
            raise LayerscopeError(f"{what} {value} is out of range: there are none.")
        raise LayerscopeError(f"{what} {value} is out of range: give one from 0 to {count - 1}.")
    return int(value)
