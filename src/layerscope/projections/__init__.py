"""2-D projections of layer activations: PCA, t-SNE, UMAP, LDA, Isomap (scikit-learn style), their quality, and the
placement of new inputs into them.

The names below are imported when first used (PEP 562), as in ``layerscope`` itself: what only needs the method
names (the dashboard's first page) loads neither torch nor scikit-learn.
"""

import importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from layerscope.projections.batches import ArrayBatches, Batches
    from layerscope.projections.compute import Projection, compute_pca, compute_projection
    from layerscope.projections.isomap import Isomap
    from layerscope.projections.lda import LDA
    from layerscope.projections.pca import PCA
    from layerscope.projections.place import Placement, fit_placement
    from layerscope.projections.quality import knn_accuracy, trustworthiness
    from layerscope.projections.tsne import TSNE
    from layerscope.projections.umap import UMAP

METHODS = ("pca", "tsne", "umap", "lda", "isomap")  # what ``compute_projection`` computes
PLACEABLE = ("pca", "lda", "tsne", "umap", "isomap")  # where ``fit_placement`` places a new input

_LAZY = {
    "ArrayBatches": "batches",
    "Batches": "batches",
    "Isomap": "isomap",
    "LDA": "lda",
    "PCA": "pca",
    "Placement": "place",
    "Projection": "compute",
    "TSNE": "tsne",
    "UMAP": "umap",
    "compute_pca": "compute",
    "compute_projection": "compute",
    "fit_placement": "place",
    "knn_accuracy": "quality",
    "trustworthiness": "quality",
}


def __getattr__(name: str) -> _typing.Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'layerscope.projections' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"layerscope.projections.{module}"), name)
    globals()[name] = value  # once imported, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "METHODS",
    "LDA",
    "PCA",
    "PLACEABLE",
    "TSNE",
    "UMAP",
    "ArrayBatches",
    "Batches",
    "Isomap",
    "Placement",
    "Projection",
    "compute_pca",
    "compute_projection",
    "fit_placement",
    "knn_accuracy",
    "trustworthiness",
]
