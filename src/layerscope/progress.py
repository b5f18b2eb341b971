"""How the core reports progress: a plain callable, so the library never prints (the CLI draws the bars)."""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["ProgressFn", "no_progress"]

# progress(task, done, total): ``task`` names the work ("train epoch 2/6", "capture", "pca conv2"), ``done`` of
# ``total`` units are finished. Called with done == 0 when a task starts and done == total when it ends.
ProgressFn = Callable[[str, int, int], None]


def no_progress(task: str, done: int, total: int) -> None:
    """The default: report nothing."""
