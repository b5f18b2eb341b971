"""Isomap, fitted on a sample (its geodesic distances are O(n^2)) and extended to every other point by
``transform`` in chunks."""

from __future__ import annotations

from typing import Any

import numpy as np

from layerscope.progress import ProgressFn, no_progress

__all__ = ["Isomap"]


class Isomap:
    """``fit(x)`` fits scikit-learn's Isomap on ``fit_sample`` random rows; ``embedding_`` covers every row."""

    def __init__(
        self,
        n_neighbors: int = 10,
        fit_sample: int = 5000,
        chunk: int = 5000,
        random_state: int | None = None,
        progress: ProgressFn = no_progress,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.fit_sample = fit_sample
        self.chunk = chunk
        self.random_state = random_state
        self.progress = progress

    def fit(self, x: np.ndarray, y: Any = None) -> Isomap:
        n = len(x)
        rng = np.random.default_rng(self.random_state)
        self.sample_ = np.sort(rng.choice(n, size=min(self.fit_sample, n), replace=False))
        self.progress("isomap", 0, n)
        from sklearn.manifold import Isomap as SkIsomap  # scikit-learn takes over a second to import: when used

        self.isomap_ = SkIsomap(n_neighbors=min(self.n_neighbors, len(self.sample_) - 1), n_components=2)
        fitted = self.isomap_.fit_transform(x[self.sample_])
        self.embedding_ = np.empty((n, 2), np.float32)
        self.embedding_[self.sample_] = fitted
        rest = np.setdiff1d(np.arange(n), self.sample_)
        done = len(self.sample_)
        self.progress("isomap", done, n)
        for start in range(0, len(rest), self.chunk):
            # (chunk, d) -> (chunk, 2): neighbours among the fitted sample, then their geodesic distances
            part = rest[start : start + self.chunk]
            self.embedding_[part] = self.isomap_.transform(x[part])
            done += len(part)
            self.progress("isomap", done, n)
        return self

    def fit_transform(self, x: np.ndarray, y: Any = None) -> np.ndarray:
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray) -> np.ndarray:
        parts = [self.isomap_.transform(x[i : i + self.chunk]) for i in range(0, len(x), self.chunk)]
        return np.concatenate(parts).astype(np.float32)
