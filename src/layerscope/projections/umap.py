"""UMAP through umap-learn."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from layerscope.progress import ProgressFn, no_progress

__all__ = ["UMAP"]


class UMAP:
    """scikit-learn style wrapper of ``umap.UMAP`` (2-D); ``embedding_`` (n, 2) after ``fit``."""

    def __init__(
        self,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        random_state: int | None = None,
        progress: ProgressFn = no_progress,
    ) -> None:
        self.n_neighbors = n_neighbors
        self.min_dist = min_dist
        self.random_state = random_state
        self.progress = progress

    def fit(self, x: np.ndarray, y: Any = None) -> UMAP:
        self.progress("umap", 0, 1)
        with warnings.catch_warnings():
            # umap-learn warns that a fixed random_state turns off parallelism, and numba/pynndescent emit
            # deprecation notices on import; neither is actionable for a layerscope user.
            warnings.simplefilter("ignore")
            import umap

            self.umap_ = umap.UMAP(
                n_components=2,
                n_neighbors=min(self.n_neighbors, len(x) - 1),
                min_dist=self.min_dist,
                random_state=self.random_state,
            )
            self.embedding_ = np.asarray(self.umap_.fit_transform(np.asarray(x, np.float32)), dtype=np.float32)
        self.progress("umap", 1, 1)
        return self

    def fit_transform(self, x: np.ndarray, y: Any = None) -> np.ndarray:
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.umap_.transform(np.asarray(x, np.float32)), dtype=np.float32)
