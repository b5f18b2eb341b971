"""t-SNE through openTSNE: FFT-accelerated gradients (Barnes-Hut for up to ``BH_MAX`` points), PCA initialisation
or given start positions, and ``transform`` for new points.

125 early-exaggeration and 250 further iterations (openTSNE's defaults are 250 + 500): with openTSNE's automatic
learning rate (n / 12) 70,000 points have converged by then; benchmarks/projections.py measured the same kNN
accuracy and trustworthiness in half the optimisation time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from layerscope.progress import ProgressFn, no_progress

__all__ = ["TSNE"]

# up to this many points Barnes-Hut gradients are faster than FFT ones, whose interpolation grid costs ~20 s however
# few the points (80 points: 22 s with FFT, 1 s with Barnes-Hut; 3,000: 21 s and 26 s, measured on 2 cores)
BH_MAX = 2_000


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
    ) -> None:
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
        every = 25
        calls = [0]

        def report(iteration: int, error: float, embedding: Any) -> bool:
            calls[0] += 1
            self.progress("tsne", min(calls[0] * every, total), total)
            return False

        self.progress("tsne", 0, total)
        tsne = OpenTSNE(
            n_components=2,
            perplexity=min(self.perplexity, (len(x) - 1) / 3),
            n_iter=self.n_iter,
            early_exaggeration_iter=self.early_exaggeration_iter,
            initialization=self._start(),
            negative_gradient_method=self._gradient(len(x)),
            n_jobs=self.n_jobs,
            random_state=self.random_state,
            callbacks=report,
            callbacks_every_iters=every,
        )
        self.gradient_ = self._gradient(len(x))
        self.embedding_obj_ = tsne.fit(np.ascontiguousarray(x, dtype=np.float32))
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
