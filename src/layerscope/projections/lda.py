"""Linear discriminant analysis (supervised): the 2-D linear map that best separates the classes."""

from __future__ import annotations

import numpy as np

from layerscope.errors import LayerscopeError

__all__ = ["LDA"]


class LDA:
    """scikit-learn style; ``fit(x, y)`` needs labels and at least 3 classes for two axes."""

    def __init__(self, random_state: int | None = None) -> None:
        self.random_state = random_state  # LDA is deterministic; kept for a uniform interface

    def fit(self, x: np.ndarray, y: np.ndarray) -> LDA:
        classes = np.unique(y)
        if len(classes) < 3:
            raise LayerscopeError(f"LDA gives two axes only with at least 3 classes; this data has {len(classes)}.")
        from sklearn.discriminant_analysis import LinearDiscriminantAnalysis  # imported when used (over a second)

        self.lda_ = LinearDiscriminantAnalysis(n_components=2, solver="svd").fit(x, y)
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.lda_.transform(x), dtype=np.float32)

    def fit_transform(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return self.fit(x, y).transform(x)
