"""How faithful a 2-D projection is: neighbourhood label accuracy and trustworthiness, on samples."""

from __future__ import annotations

import numpy as np

__all__ = ["knn_accuracy", "trustworthiness"]


def knn_accuracy(
    embedding: np.ndarray,
    labels: np.ndarray,
    k: int = 10,
    sample: int = 10_000,
    random_state: int = 0,
    among: np.ndarray | None = None,
) -> float:
    """Share of sampled points whose k nearest 2-D neighbours (among all points, itself excluded) vote its label;
    the sample is drawn from the indices ``among`` when given (the points a fit on a sample placed)."""
    pool = np.arange(len(embedding)) if among is None else np.asarray(among)
    n = len(embedding)
    rng = np.random.default_rng(random_state)
    query = rng.choice(pool, size=min(sample, len(pool)), replace=False)
    from sklearn.neighbors import NearestNeighbors  # scikit-learn takes over a second to import: when used

    nn = NearestNeighbors(n_neighbors=min(k + 1, n)).fit(embedding)
    _, idx = nn.kneighbors(embedding[query])
    neighbours = labels[idx[:, 1:]]  # drop the point itself
    n_classes = int(labels.max()) + 1
    votes = np.stack([(neighbours == c).sum(1) for c in range(n_classes)], axis=1)
    return float((votes.argmax(1) == labels[query]).mean())


def trustworthiness(high: np.ndarray, embedding: np.ndarray, k: int = 10) -> float:
    """scikit-learn's trustworthiness (1 = every 2-D neighbour is a neighbour in the layer too); pass a sample."""
    from sklearn.manifold import trustworthiness as _trustworthiness

    return float(_trustworthiness(high, embedding, n_neighbors=min(k, (len(high) - 1) // 2)))
