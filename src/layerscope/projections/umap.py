"""UMAP through umap-learn.

Given a ``NeighborGraph`` (the Run's stored one, `projections/neighbors.py`), umap-learn takes it as its
``precomputed_knn`` instead of building its own with NN-descent, and ``transform`` finds new points' neighbours among
the fitted points by exact search (``ExactIndex``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from layerscope.progress import ProgressFn, no_progress
from layerscope.projections.neighbors import ExactIndex, NeighborGraph

__all__ = ["UMAP"]


class UMAP:
    """scikit-learn style wrapper of ``umap.UMAP`` (2-D); ``embedding_`` (n, 2) after ``fit``."""

    def __init__(
        self,
        n_neighbors: int = 15,
        min_dist: float = 0.1,
        random_state: int | None = None,
        progress: ProgressFn = no_progress,
        neighbors: NeighborGraph | None = None,
        device: str = "cpu",
    ) -> None:
        self.neighbors = neighbors  # the fitted rows' precomputed graph, at least n_neighbors - 1 neighbours each
        self.device = device  # where transform's exact neighbour search runs
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

            n_neighbors = min(self.n_neighbors, len(x) - 1)
            graph: tuple[Any, Any, Any] = (None, None, None)
            if self.neighbors is not None:  # umap-learn counts each point as its own nearest neighbour
                n_neighbors = min(n_neighbors, self.neighbors.indices.shape[1] + 1)
                graph = (*self.neighbors.with_self(n_neighbors), None)
            self.umap_ = umap.UMAP(
                n_components=2,
                n_neighbors=n_neighbors,
                min_dist=self.min_dist,
                random_state=self.random_state,
                precomputed_knn=graph,
                init="pca",  # spectral initialisation solves an eigenproblem: 37 against 29 s over 70,000 points
            )
            x = np.ascontiguousarray(x, np.float32)
            self.embedding_ = np.asarray(self.umap_.fit_transform(x), dtype=np.float32)
            if self.neighbors is not None:  # no NN-descent index was built: transform searches the rows exactly
                self.umap_._knn_search_index = ExactIndex(x, self.device)
        self.progress("umap", 1, 1)
        return self

    def fit_transform(self, x: np.ndarray, y: Any = None) -> np.ndarray:
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return np.asarray(self.umap_.transform(np.asarray(x, np.float32)), dtype=np.float32)
