"""Nearest-neighbour graphs: one per layer, computed once, stored in the Run and shared by t-SNE (openTSNE's
precomputed neighbours), UMAP (umap-learn's ``precomputed_knn``) and by both methods' placement of points that a
fit on a sample leaves out.

Two searches, chosen by size (``knn_graph(method="auto")``):

- **exact**, blocked: each block of queries against every reference row is one matrix product ``|r|^2 - 2 q.r``
  (the query's own ``|q|^2`` does not change its ranking and is added to the k kept only) and one ``topk``, on the
  CPU or the GPU through torch. 70,000 x 64 (fc2) takes ~15 s on 2 cores and finds every neighbour.
- **approximate**: pynndescent's NN-descent past ``EXACT_MAX`` points, where the exact search's n^2 work stops
  paying (70,000 x 64: 48 s on 2 cores, recall 0.99996 against the exact graph; see benchmarks/projections.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from layerscope.progress import ProgressFn, no_progress

__all__ = ["K", "NeighborGraph", "ExactIndex", "exact_neighbors", "knn_graph", "stratified_sample"]

K = 90  # neighbours kept per point: t-SNE at perplexity 30 reads 3 x 30 of them, UMAP 15
EXACT_MAX = 200_000  # exact search up to this many points; NN-descent past it
BLOCK_BYTES = 1 << 28  # one block of query-to-reference distances (256 MiB of float32)


@dataclass(frozen=True)
class NeighborGraph:
    """Each point's ``k`` nearest other points: ``indices`` (N, k) int32 and Euclidean ``distances`` (N, k) float32,
    nearest first, the point itself left out; ``meta`` says how it was found (method, k, seconds)."""

    indices: np.ndarray
    distances: np.ndarray
    meta: dict[str, Any]

    def with_self(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(N, k) indices and distances with each point first, at distance 0, as umap-learn's ``precomputed_knn``
        takes them."""
        n = len(self.indices)
        own = np.arange(n, dtype=np.int32)[:, None]
        indices = np.concatenate([own, self.indices[:, : k - 1]], axis=1)
        distances = np.concatenate([np.zeros((n, 1), np.float32), self.distances[:, : k - 1]], axis=1)
        return np.ascontiguousarray(indices), np.ascontiguousarray(distances)


def exact_neighbors(
    queries: np.ndarray,
    reference: np.ndarray,
    k: int,
    exclude_self: bool = False,
    device: str = "cpu",
    progress: ProgressFn = no_progress,
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest ``reference`` rows of each query row, by blocked exact search: (n, k) int32 indices and
    float32 Euclidean distances, nearest first. ``exclude_self``: the queries are the reference's own rows (in order),
    and each leaves itself out."""
    n, m = len(queries), len(reference)
    k = min(k, m - 1 if exclude_self else m)
    ref = torch.as_tensor(np.array(reference, np.float32), device=device)  # a copy: a Run's arrays are read-only
    ref_sq = (ref * ref).sum(1)
    ref_t = ref.T.contiguous()
    block = int(np.clip(BLOCK_BYTES // (4 * max(m, 1)), 16, 8192))
    indices = np.empty((n, k), np.int32)
    distances = np.empty((n, k), np.float32)
    progress("neighbours", 0, n)
    for start in range(0, n, block):
        stop = min(start + block, n)
        q = torch.as_tensor(np.array(queries[start:stop], np.float32), device=device)
        # |r|^2 - 2 q.r: the squared distance less the query's own |q|^2, which ranks the same
        d = torch.addmm(ref_sq[None, :], q, ref_t, alpha=-2.0)
        if exclude_self:
            rows = torch.arange(stop - start, device=device)
            d[rows, rows + start] = float("inf")
        values, found = torch.topk(d, k, dim=1, largest=False, sorted=True)
        values = (values + (q * q).sum(1, keepdim=True)).clamp_min_(0).sqrt_()
        indices[start:stop] = found.cpu().numpy()
        distances[start:stop] = values.cpu().numpy()
        progress("neighbours", stop, n)
    return indices, distances


def knn_graph(
    x: np.ndarray,
    k: int = K,
    method: str = "auto",
    device: str = "cpu",
    random_state: int = 0,
    progress: ProgressFn = no_progress,
) -> NeighborGraph:
    """The ``k``-nearest-neighbour graph of the rows of ``x`` (itself left out): ``method`` "exact", "nndescent"
    (pynndescent), or "auto" (exact up to ``EXACT_MAX`` rows)."""
    if method not in ("auto", "exact", "nndescent"):
        raise ValueError(f"unknown neighbour search {method!r}; choose auto, exact or nndescent.")
    n = len(x)
    k = min(k, n - 1)
    if method == "auto":
        method = "exact" if n <= EXACT_MAX else "nndescent"
    start = time.perf_counter()
    if method == "exact":
        indices, distances = exact_neighbors(x, x, k, exclude_self=True, device=device, progress=progress)
    else:
        progress("neighbours", 0, n)
        from pynndescent import NNDescent

        # k + 1: NN-descent counts the point itself, first, at distance 0
        index = NNDescent(np.asarray(x, np.float32), n_neighbors=k + 1, random_state=random_state, n_jobs=-1)
        found, dist = index.neighbor_graph
        indices = np.ascontiguousarray(found[:, 1:], dtype=np.int32)
        distances = np.ascontiguousarray(dist[:, 1:], dtype=np.float32)
        progress("neighbours", n, n)
    meta = {"method": method, "k": k, "n_points": n, "seconds": round(time.perf_counter() - start, 3)}
    return NeighborGraph(indices, distances, meta)


class ExactIndex:
    """A search index over ``reference`` rows with pynndescent's ``query`` (what umap-learn's ``transform`` asks
    its fitted model's index), answered by ``exact_neighbors``."""

    _angular_trees = False  # umap-learn reads it to choose the query's epsilon, which exact search ignores

    def __init__(self, reference: np.ndarray, device: str = "cpu") -> None:
        self.reference = np.ascontiguousarray(reference, np.float32)
        self.device = device

    def query(self, queries: np.ndarray, k: int = 10, epsilon: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        return exact_neighbors(queries, self.reference, k, device=self.device)


def stratified_sample(labels: np.ndarray, size: int, random_state: int = 0) -> np.ndarray:
    """``size`` sorted indices (all of them if there are no more), each class in its share of ``labels``, at least
    one of every class present."""
    n = len(labels)
    if size >= n:
        return np.arange(n)
    rng = np.random.default_rng(random_state)
    classes, counts = np.unique(labels, return_counts=True)
    shares = np.maximum(np.floor(counts * size / n).astype(int), 1)
    # the rounding's remainder goes to the largest classes
    for i in np.argsort(-counts)[: max(size - int(shares.sum()), 0)]:
        shares[i] += 1
    picked = [
        rng.choice(np.flatnonzero(labels == c), size=min(s, cnt), replace=False)
        for c, s, cnt in zip(classes, shares, counts, strict=True)
    ]
    return np.sort(np.concatenate(picked))
