"""t-SNE through openTSNE: FFT-accelerated gradients (Barnes-Hut for up to ``BH_MAX`` points), PCA initialisation
or given start positions, and ``transform`` for new points.

Given a ``NeighborGraph`` (the Run's stored one, `projections/neighbors.py`), the affinities come from it instead of
openTSNE's own approximate search; ``transform`` then finds the new points' neighbours among the fitted points by
exact search (``ExactAffinities``).

125 early-exaggeration and 250 further iterations (openTSNE's defaults are 250 + 500): with openTSNE's automatic
learning rate (n / 12) 70,000 points have converged by then; benchmarks/projections.py measured the same kNN
accuracy and trustworthiness in half the optimisation time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerscope.progress import ProgressFn, no_progress
from layerscope.projections.neighbors import NeighborGraph, exact_neighbors

__all__ = ["TSNE", "ExactAffinities"]

# up to this many points Barnes-Hut gradients are faster than FFT ones, whose interpolation grid costs ~20 s however
# few the points (80 points: 22 s with FFT, 1 s with Barnes-Hut; 3,000: 21 s and 26 s, measured on 2 cores)
BH_MAX = 2_000
EVERY = 25  # optimisation iterations between progress reports


class TSNE:
    """scikit-learn style wrapper of ``openTSNE.TSNE``; ``embedding_`` (n, 2) after ``fit``."""

    def __init__(
        self,
        perplexity: float = 30.0,
        n_iter: int = 250,
        early_exaggeration_iter: int = 125,
        n_jobs: int = -1,
        random_state: int | None = None,
        progress: ProgressFn = no_progress,
        initialization: str | np.ndarray = "pca",
        neighbors: NeighborGraph | None = None,
        device: str = "cpu",
    ) -> None:
        self.neighbors = neighbors  # the fitted rows' precomputed graph, at least 3 x perplexity neighbours each
        self.device = device  # where transform's exact neighbour search runs
        self.initialization = initialization  # "pca", or (n, 2) start positions (rescaled as openTSNE's PCA is)
        self.perplexity = perplexity
        self.n_iter = n_iter
        self.early_exaggeration_iter = early_exaggeration_iter
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.progress = progress

    def fit(self, x: np.ndarray, y: Any = None) -> TSNE:
        from openTSNE import TSNE as OpenTSNE

        total = self.n_iter + self.early_exaggeration_iter
        self.progress("tsne", 0, total)
        perplexity = min(self.perplexity, (len(x) - 1) / 3)
        affinities = None
        if self.neighbors is not None:
            from openTSNE.affinity import PerplexityBasedNN
            from openTSNE.nearest_neighbors import PrecomputedNeighbors

            graph = PrecomputedNeighbors(self.neighbors.indices, self.neighbors.distances)
            perplexity = min(perplexity, self.neighbors.indices.shape[1] / 3)
            affinities = PerplexityBasedNN(knn_index=graph, perplexity=perplexity, n_jobs=self.n_jobs)
        tsne = OpenTSNE(
            n_components=2,
            perplexity=perplexity,
            initialization=self._start(),
            negative_gradient_method=self._gradient(len(x)),
            n_jobs=self.n_jobs,
            random_state=self.random_state,
        )
        self.gradient_ = self._gradient(len(x))
        x = np.ascontiguousarray(x, dtype=np.float32)
        embedding = tsne.prepare_initial(x, affinities=affinities)
        # openTSNE.TSNE.fit's two phases, run EVERY iterations at a time for progress reports (its callbacks would
        # evaluate the KL divergence at each: 6 of 43 s over 70,000 points); the optimiser keeps its gains and
        # update between calls, so it is the same schedule (the same embedding up to float rounding: each call
        # multiplies P by the exaggeration and divides it back)
        phases = [
            (self.early_exaggeration_iter, tsne.early_exaggeration, tsne.initial_momentum),
            (self.n_iter, tsne.exaggeration, tsne.final_momentum),
        ]
        done = 0
        for iterations, exaggeration, momentum in phases:
            for step in range(0, iterations, EVERY):
                n_iter = min(EVERY, iterations - step)
                embedding.optimize(n_iter=n_iter, exaggeration=exaggeration, momentum=momentum, inplace=True)
                done += n_iter
                self.progress("tsne", done, total)
        self.embedding_obj_ = embedding
        # transform: the new points' neighbours among these rows by exact search (the precomputed graph has no index)
        self.embedding_obj_.affinities = ExactAffinities(x, self.device)
        self.embedding_ = np.asarray(self.embedding_obj_, dtype=np.float32)
        self.progress("tsne", total, total)
        return self

    @staticmethod
    def _gradient(n: int) -> str:
        return "bh" if n <= BH_MAX else "fft"

    def _start(self) -> str | np.ndarray:
        if isinstance(self.initialization, str):
            return self.initialization
        from openTSNE.initialization import rescale

        # the standard deviation openTSNE gives its own PCA start: the optimisation's step sizes assume it
        return rescale(np.asarray(self.initialization, dtype=np.float64), inplace=False, target_std=1e-4)

    def fit_transform(self, x: np.ndarray, y: Any = None) -> np.ndarray:
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Place new points into the fitted embedding (openTSNE's optimisation against the fixed reference)."""
        return np.asarray(self.embedding_obj_.transform(np.ascontiguousarray(x, dtype=np.float32)), dtype=np.float32)


class ExactAffinities:
    """An openTSNE affinity object for ``TSNEEmbedding.transform``: the new points' Gaussian affinities to their exact
    nearest reference points, as ``PerplexityBasedNN.to_new`` computes them from its approximate kNN index. Nothing is
    built: a query is one blocked pass over the (N, d) reference rows (``exact_neighbors``)."""

    def __init__(self, reference: np.ndarray, device: str = "cpu") -> None:
        import scipy.sparse as sp

        self.reference = np.ascontiguousarray(reference, np.float32)
        self.device = device
        self.n = len(reference)
        # TSNEEmbedding checks the reference's size against P's rows; transform never reads P itself
        self.P = sp.csr_matrix((self.n, self.n), dtype=np.float64)

    # ``perplexity`` by this name: TSNEEmbedding.transform looks for it in the signature
    def to_new(self, data: np.ndarray, perplexity: float = 5.0, return_distances: bool = False) -> Any:
        from openTSNE.affinity import joint_probabilities_nn

        k = min(self.n, int(3 * perplexity))
        neighbours, distances = exact_neighbors(data, self.reference, k, device=self.device)
        P = joint_probabilities_nn(
            neighbours.astype(np.int64),
            distances.astype(np.float64),
            [perplexity if perplexity <= k else k / 3],  # as PerplexityBasedNN.check_perplexity
            symmetrize=False,
            normalization="point-wise",
            n_reference_samples=self.n,
        )
        return (P, neighbours, distances) if return_distances else P
