"""PCA over all rows of a layer, streamed: exact for narrow layers, randomised for wide ones.

exact       accumulate X^T X and the column sums in float64 over one pass, eigendecompose the (d, d) covariance,
            then project in a second pass. Used up to ``exact_max_dim`` features (the input's 784 pixels, dense layers).
            Sums taken already (a capture's, `layerscope.stats`; ``use_sums``) leave the projection pass alone.
randomized  Halko, Martinsson & Tropp (2011) with power iterations on the centred covariance, as in
            scikit-learn's ``randomized_svd``, but each product with X is one streamed pass, so a 70k x 18,432 conv
            layer is never held in memory. ``n_iter + 1`` passes; centring is folded into the products.

Streamed rows that fit in ``keep_rows_bytes`` (float32) are copied into memory on the first pass and the remaining
passes run over that copy, so a layer recomputed from the model (pool: 70k x 4,608, 1.3 GB) costs one forward pass
instead of ``n_iter + 1``. Products are float32 (BLAS sgemm), accumulated per batch into float64.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch

from layerscope.projections.batches import Batches, as_batches

__all__ = ["PCA", "fit_together"]

_CHUNK = 8192  # rows per product when the rows are in memory


def _mm(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` through torch (MKL, torch's own threads): numpy's OpenBLAS threads fight torch's on a busy 2-core
    machine and were measured up to 40x slower on the small float64 steps. Both must be writable arrays."""
    return torch.mm(torch.from_numpy(a), torch.from_numpy(b)).numpy()


def _flip_signs(components: np.ndarray) -> np.ndarray:
    """Make each component's largest-magnitude entry positive, so results do not depend on the solver."""
    idx = np.argmax(np.abs(components), axis=1)
    signs = np.sign(components[np.arange(len(components)), idx])
    signs[signs == 0] = 1
    return components * signs[:, None]


class PCA:
    """Principal component analysis, scikit-learn style, fitting on arrays or streamed ``Batches``.

    After ``fit``: ``components_`` (k, d), ``mean_`` (d,), ``explained_variance_`` (k,),
    ``explained_variance_ratio_`` (k,), ``embedding_`` (n, k) the projection of the rows it was fitted on,
    ``solver_`` ("exact" or "randomized") and ``from_sums_`` (whether sums given by `use_sums` spared a pass).
    """

    def __init__(
        self,
        n_components: int = 2,
        solver: str = "auto",
        n_iter: int = 3,
        n_oversamples: int = 10,
        exact_max_dim: int = 1024,
        random_state: int | None = None,
        keep_rows_bytes: int = 0,
    ) -> None:
        self.n_components = n_components
        self.solver = solver
        self.n_iter = n_iter
        self.n_oversamples = n_oversamples
        self.exact_max_dim = exact_max_dim
        self.random_state = random_state
        self.keep_rows_bytes = keep_rows_bytes
        self._given: tuple[int, np.ndarray, np.ndarray] | None = None

    def use_sums(self, count: int, total: np.ndarray, xtx: np.ndarray) -> PCA:
        """Fit the exact solver from sums already taken over the rows it will be given (a capture's,
        `layerscope.stats`): ``count`` rows, their column sums (d,) and X^T X (d, d) in float64. The fit is then one
        pass, the projection; the randomised solver ignores them."""
        self._given = (int(count), np.asarray(total, np.float64), np.asarray(xtx, np.float64))
        return self

    # -- the streaming protocol: fit_together() drives several PCAs with one stream of batches per pass -----------
    def _begin(self, n_samples: int, n_features: int) -> int:
        """Prepare to fit; return how many passes over the data are needed (1 when the rows are kept in memory)."""
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
        self._seen = 0
        self._shift: np.ndarray | None = None
        keep = n_samples * n_features * 4 <= self.keep_rows_bytes
        self._x = np.empty((n_samples, n_features), np.float32) if keep else None
        self._skip = 0  # passes already done by the sums given (`use_sums`)
        given = self.__dict__.pop("_given", None)
        self.from_sums_ = solver == "exact" and given is not None
        if solver == "exact" and given is not None:
            count, total, xtx = given
            if count != n_samples or total.shape != (n_features,) or xtx.shape != (n_features, n_features):
                raise ValueError(f"sums of {count} x {len(total)} rows given to fit {n_samples} x {n_features}")
            self._x = None
            self._shift = np.zeros(n_features, np.float32)  # the sums are of the rows as they are
            self._sum, self._gram = total.copy(), xtx.copy()
            self._sumsq = np.diagonal(xtx).copy()
            self._passes, self._skip = 2, 1
            self._end_pass(0)
            return 1
        if solver == "exact":
            self._gram = np.zeros((n_features, n_features), np.float64)
            self._passes = 2
            return 1 if keep else self._passes
        rng = np.random.default_rng(self.random_state)
        self._l = min(k + self.n_oversamples, n_features, n_samples)
        self._q = rng.standard_normal((n_features, self._l)).astype(np.float32)
        self._acc = np.zeros((n_features, self._l), np.float64)
        self._qsum = np.zeros(self._l, np.float64)
        self._mu_q = np.zeros(self._l, np.float32)
        self._passes = max(1, self.n_iter) + 1
        return 1 if keep else self._passes

    def _update(self, pass_index: int, x: np.ndarray, shifted: bool = False) -> None:
        pass_index += self._skip
        x = np.asarray(x, np.float32)
        if self._shift is None:  # a rough mean (the first batch's), so that float32 sums and products do not cancel
            self._shift = x.mean(0)
        if shifted:  # rows kept in memory, stored shifted
            xs = x
        elif self._x is not None and pass_index == 0:  # the first, real pass: keep the rows, shifted
            xs = self._x[self._seen : self._seen + len(x)]
            np.subtract(x, self._shift, out=xs)
            self._seen += len(x)
        else:
            xs = x - self._shift  # every product is of the shifted rows; the exact mean is applied afterwards
        if pass_index == 0:
            self._sum += xs.sum(0).astype(np.float64)
            self._sumsq += np.einsum("ij,ij->j", xs, xs).astype(np.float64)
        if self.solver_ == "exact":
            if pass_index == 0:  # float32 product of one batch, accumulated in float64
                self._gram += _mm(xs.T, xs).astype(np.float64)
            else:  # (b, d) @ (d, k) -> (b, k)
                self._rows.append(_mm(xs, self._v) - self._mu_q)
            return
        # randomized: every pass computes B = Xc Q; passes before the last accumulate Xc^T B as well. Centring is
        # applied afterwards (Xc = Xs - 1 delta^T, delta = mean - shift), since the mean is only known after the
        # first pass.
        b = _mm(xs, self._q)  # (b, d) @ (d, l) -> (b, l)
        if pass_index < self._passes - 1:
            self._acc += _mm(xs.T, b).astype(np.float64)
            self._qsum += b.sum(0, dtype=np.float64)
        else:
            self._rows.append(b - self._mu_q)

    def _end(self, pass_index: int) -> None:
        pass_index += self._skip
        self._end_pass(pass_index)
        if pass_index == 0 and self._x is not None:  # the other passes run over the rows kept in memory
            x, self._x = self._x, None
            for p in range(1, self._passes):
                for start in range(0, len(x), _CHUNK):
                    self._update(p, x[start : start + _CHUNK], shifted=True)
                self._end_pass(p)

    def _end_pass(self, pass_index: int) -> None:
        n = self._n
        if pass_index == 0:
            delta = self._delta = self._sum / n  # mean - shift
            self.mean_ = np.asarray(self._shift, np.float64) + delta
            self._total_var = float((self._sumsq - n * delta**2).sum() / max(n - 1, 1))
        if self.solver_ == "exact":
            if pass_index == 0:
                cov = (self._gram - n * np.outer(delta, delta)) / max(n - 1, 1)
                values, vectors = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(cov)))
                order = np.argsort(values)[::-1][: self._k]
                self.components_ = _flip_signs(vectors[:, order].T)
                self.explained_variance_ = np.maximum(values[order], 0.0)
                self._v = self.components_.T.astype(np.float32)
                self._mu_q = (delta @ self.components_.T).astype(np.float32)  # (k,): the centring, projected
                del self._gram
            else:
                self.embedding_ = np.concatenate(self._rows).astype(np.float32)
                self._rows = []
            return
        if pass_index < self._passes - 1:
            # Xc^T Xc Q = Xs^T Xs Q - n delta delta^T Q = acc - delta (1^T Xs Q), with Xc = Xs - 1 delta^T
            y = self._acc - np.outer(self._delta, self._qsum)
            q = torch.linalg.qr(torch.from_numpy(y)).Q.numpy()
            self._q = q.astype(np.float32)
            self._mu_q = (self._delta @ q).astype(np.float32)  # (l,)
            self._acc[:] = 0
            self._qsum[:] = 0
            return
        b = np.concatenate(self._rows).astype(np.float64)  # (n, l) = Xc Q
        self._rows = []
        # SVD of the thin B = U S W^T through the (l, l) Gram B^T B = W S^2 W^T (float64, l <= a few hundred):
        # the scores U S are B W, so U (n, l) is never formed
        values, w = (t.numpy() for t in torch.linalg.eigh(torch.from_numpy(_mm(b.T, b))))
        order = np.argsort(values)[::-1][: self._k]
        w = w[:, order]
        components = _mm(self._q.astype(np.float64), w).T  # (k, d)
        flipped = _flip_signs(components)
        signs = np.sign((flipped * components).sum(1))
        self.components_ = flipped
        self.explained_variance_ = np.maximum(values[order], 0.0) / max(n - 1, 1)
        self.embedding_ = (_mm(b, np.ascontiguousarray(w)) * signs).astype(np.float32)

    def _finish(self) -> None:
        self.explained_variance_ratio_ = self.explained_variance_ / max(self._total_var, 1e-300)
        self.n_features_in_ = self._d
        self.n_samples_ = self._n
        for attr in (
            "_sum",
            "_sumsq",
            "_acc",
            "_q",
            "_v",
            "_rows",
            "_mu_q",
            "_qsum",
            "_x",
            "_shift",
            "_seen",
            "_delta",
        ):
            self.__dict__.pop(attr, None)

    # -- scikit-learn API ---------------------------------------------------------------------------------------
    def fit(self, x: np.ndarray | Batches, y: Any = None) -> PCA:
        batches = as_batches(x)
        fit_together({"x": self}, {"x": batches.shape}, lambda names: ({"x": b} for b in batches))
        return self

    def fit_transform(self, x: np.ndarray | Batches, y: Any = None) -> np.ndarray:
        return self.fit(x).embedding_

    def transform(self, x: np.ndarray | Batches) -> np.ndarray:
        rows = [(b - self.mean_) @ self.components_.T for b in as_batches(x)]
        return np.concatenate(rows).astype(np.float32)


def fit_together(
    estimators: Mapping[str, PCA],
    shapes: Mapping[str, tuple[int, int]],
    stream: Callable[[Sequence[str]], Iterable[Mapping[str, np.ndarray]]],
    on_pass: Callable[[int, int], None] | None = None,
) -> None:
    """Fit several PCAs with shared passes: ``stream(names)`` yields ``{name: batch}`` dicts for (at least) those
    estimators still fitting, one full pass per call.

    Layers of one model share a forward pass this way, so fitting conv1, conv2 and pool costs one model pass per
    PCA pass, not three; an estimator that keeps its rows in memory needs only the first.
    """
    passes = {name: est._begin(*shapes[name]) for name, est in estimators.items()}
    total = max(passes.values())
    for p in range(total):
        active = [name for name in estimators if p < passes[name]]
        if on_pass is not None:
            on_pass(p, total)
        for batch in stream(active):
            for name in active:
                estimators[name]._update(p, batch[name])
        for name in active:
            estimators[name]._end(p)
    for est in estimators.values():
        est._finish()
