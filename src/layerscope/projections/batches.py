"""Feature matrices too large to hold at once, seen as a sequence of row batches.

A ``Batches`` is re-iterable: each ``iter()`` starts a new pass over the rows, in the same order. Streaming PCA makes
several passes; for a conv layer each pass re-runs the model instead of storing 70k x 18,432 floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

__all__ = ["Batches", "ArrayBatches", "as_batches"]


class Batches:
    """Rows of an (n_samples, n_features) matrix, produced batch by batch by ``make_iter()`` on every pass."""

    def __init__(self, make_iter: Callable[[], Iterable[np.ndarray]], n_samples: int, n_features: int) -> None:
        self._make_iter = make_iter
        self.n_samples = n_samples
        self.n_features = n_features

    def __iter__(self) -> Iterator[np.ndarray]:
        for batch in self._make_iter():
            yield np.asarray(batch, dtype=np.float32).reshape(len(batch), -1)

    @property
    def shape(self) -> tuple[int, int]:
        return self.n_samples, self.n_features


class ArrayBatches(Batches):
    """An in-memory or memory-mapped array, read ``batch_size`` rows at a time."""

    def __init__(self, array: np.ndarray, batch_size: int = 4096) -> None:
        self.array = array
        rows = array.reshape(len(array), -1) if array.ndim != 2 else array
        super().__init__(lambda: (rows[i : i + batch_size] for i in range(0, len(rows), batch_size)), *rows.shape)


def as_batches(x: np.ndarray | Batches, batch_size: int = 4096) -> Batches:
    return x if isinstance(x, Batches) else ArrayBatches(np.asarray(x), batch_size)
