"""Generated malformed input (Hypothesis): what the fuzz tests share."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    """A temporary working directory whose contents are compared before and after: nothing may be written."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.chdir(tmp):
        yield Path(tmp)


def tree(root: Path) -> list[str]:
    """Every path below ``root``, relative and sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))
