"""PCA over all rows of a layer, streamed: exact for narrow layers, randomised for wide ones.

exact       accumulate X^T X and the column sums in float64 over one pass, eigendecompose the (d, d) covariance,
            then project in a second pass. Used up to ``exact_max_dim`` features (the input's 784 pixels, dense layers).
randomized  Halko, Martinsson & Tropp (2011) with power iterations on the centred covariance, as in
            scikit-learn's ``randomized_svd``, but each product with X is one streamed pass, so a 70k x 18,432 conv
            layer is never held in memory. ``n_iter + 1`` passes; centring is folded into the products.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from layerscope.projections.batches import Batches, as_batches

__all__ = ["PCA", "fit_together"]


def _flip_signs(components: np.ndarray) -> np.ndarray:
    """Make each component's largest-magnitude entry positive, so results do not depend on the solver."""
    idx = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(len(components)), idx])
    signs[signs == 0] = 1
    return components * signs[:, None]


class PCA:
    """Principal component analysis, scikit-learn style, fitting on arrays or streamed ``Batches``.

    After ``fit``: ``components_`` (k, d), ``mean_`` (d,), ``explained_variance_`` (k,),
    ``explained_variance_ratio_`` (k,), ``embedding_`` (n, k) the projection of the rows it was fitted on, and
    ``solver_`` ("exact" or "randomized").
    """

    def __init__(
        self,
        n_components: int = 2,
        solver: str = "auto",
        n_iter: int = 3,
        n_oversamples: int = 10,
        exact_max_dim: int = 1024,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.solver = solver
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.exact_max_dim = exact_max_dim
        self.random_state = random_state

    # -- the streaming protocol: fit_together() drives several PCAs with one stream of batches per pass -----------
    def _begin(self, n_samples: int, n_features: int) -> int:
        """Prepare to fit; return how many passes over the data are needed."""
        if self.solver not in ("auto", "exact", "randomized"):
            raise ValueError(f"unknown PCA solver {self.solver!r}; use auto, exact or randomized")
        k = min(self.n_components, n_features, n_samples)
        self._k = k
        self._n, self._d = n_samples, n_features
        solver = self.solver
        if solver == "auto":
            solver = "exact" if n_features <= self.exact_max_dim else "randomized"
        self.solver_ = solver
        self._sum = np.zeros(n_features, np.float64)
        self._sumsq = np.zeros(n_features, np.float64)
        self._rows: list[np.ndarray] = []
        if solver == "exact":
            self._gram = np.zeros((n_features, n_features), np.float64)
            self._passes = 2
            return self._passes
        rng = np.random.default_rng(self.random_state)
        self._l = min(k + self.n_oversamples, n_features, n_samples)
        self._q = rng.standard_normal((n_features, self._l)).astype(np.float32)
        self._acc = np.zeros((n_features, self._l), np.float64)
        self._qsum = np.zeros(self._l, np.float64)
        self._mu_q = np.zeros(self._l, np.float32)
        self._passes = max(1, self.n_iter) + 1
        return self._passes

    def _update(self, pass_index: int, x: np.ndarray) -> None:
        x = np.asarray(x, np.float32)
        if pass_index == 0:
            self._sum += x.sum(0, dtype=np.float64)
            self._sumsq += np.einsum("ij,ij->j", x, x, dtype=np.float64)
        if self.solver_ == "exact":
            if pass_index == 0:
                x64 = x.astype(np.float64)
                self._gram += x64.T @ x64
            else:  # (b, d) @ (d, k) -> (b, k)
                self._rows.append((x - self.mean_.astype(np.float32)) @ self._v)
            return
        # randomized: every pass computes B = Xc Q; passes before the last accumulate Xc^T B as well. Centring is
        # applied afterwards (Xc = X - 1 mu^T), since the mean is only known after the first pass.
        b = x @ self._q  # (b, d) @ (d, l) -> (b, l)
        if pass_index < self._passes - 1:
            self._acc += (x.T @ b).astype(np.float64)
            self._qsum += b.sum(0, dtype=np.float64)
        else:
            self._rows.append(b - self._mu_q)

    def _end(self, pass_index: int) -> None:
        n = self._n
        if pass_index == 0:
            self.mean_ = self._sum / n
            self._total_var = float((self._sumsq - n * self.mean_**2).sum() / max(n - 1, 1))
        if self.solver_ == "exact":
            if pass_index == 0:
                cov = (self._gram - n * np.outer(self.mean_, self.mean_)) / max(n - 1, 1)
                values, vectors = np.linalg.eigh(cov)
                order = np.argsort(values)[::-1][: self._k]
                self.components_ = _flip_signs(vectors[:, order].T)
                self.explained_variance_ = np.maximum(values[order], 0.0)
                self._v = self.components_.T.astype(np.float32)
                del self._gram
            else:
                self.embedding_ = np.concatenate(self._rows).astype(np.float32)
                self._rows = []
            return
        if pass_index < self._passes - 1:
            # Xc^T Xc Q = X^T X Q - n mu mu^T Q = acc - mu (1^T X Q), with Xc = X - 1 mu^T
            y = self._acc - np.outer(self.mean_, self._qsum)
            q, _ = np.linalg.qr(y)
            self._q = q.astype(np.float32)
            self._mu_q = (self.mean_ @ q).astype(np.float32)  # (l,)
            self._acc[:] = 0
            self._qsum[:] = 0
            return
        b = np.concatenate(self._rows).astype(np.float64)  # (n, l) = Xc Q
        self._rows = []
        u, s, wt = np.linalg.svd(b, full_matrices=False)
        components = (self._q.astype(np.float64) @ wt.T).T[: self._k]  # (k, d)
        flipped = _flip_signs(components)
        signs = np.sign((flipped * components).sum(1))
        self.components_ = flipped
        self.explained_variance_ = s[: self._k] ** 2 / max(n - 1, 1)
        self.embedding_ = (u[:, : self._k] * s[: self._k] * signs).astype(np.float32)

    def _finish(self) -> None:
        self.explained_variance_ratio_ = self.explained_variance_ / max(self._total_var, 1e-300)
        self.n_features_in_ = self._d
        self.n_samples_ = self._n
        for attr in ("_sum", "_sumsq", "_acc", "_q", "_v", "_rows", "_mu_q", "_qsum"):
            self.__dict__.pop(attr, None)

    # -- scikit-learn API ---------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray | Batches, y: Any = None) -> PCA:
        batches = as_batches(x)
        fit_together({"x": self}, {"x": batches.shape}, lambda: ({"x": b} for b in batches))
        return self

    def fit_transform(self, x: np.ndarray | Batches, y: Any = None) -> np.ndarray:
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray | Batches) -> np.ndarray:
        rows = [(b - self.mean_) @ self.components_.T for b in as_batches(x)]
        return np.concatenate(rows).astype(np.float32)


def fit_together(
    estimators: Mapping[str, PCA],
    shapes: Mapping[str, tuple[int, int]],
    stream: Callable[[], Iterable[Mapping[str, np.ndarray]]],
    on_pass: Callable[[int, int], None] | None = None,
) -> None:
    """Fit several PCAs with shared passes: ``stream()`` yields ``{name: batch}`` dicts, one full pass per call.

    Layers of one model share a forward pass this way, so fitting conv1, conv2 and pool costs one model pass per
    PCA pass, not three.
    """
    passes = {name: est._begin(*shapes[name]) for name, est in estimators.items()}
    total = max(passes.values())
    for p in range(total):
        active = [name for name in estimators if p < passes[name]]
        if on_pass is not None:
            on_pass(p, total)
        for batch in stream():
            for name in active:
                estimators[name]._update(p, batch[name])
        for name in active:
            estimators[name]._end(p)
    for est in estimators.values():
        est._finish()
