"""2-D projections of layer activations: PCA, t-SNE, UMAP, LDA, Isomap (scikit-learn style), their quality, and the
placement of new inputs into them.

The names below are imported when first used (``layerscope.lazy``), as in ``layerscope`` itself: what only needs
the method names (the dashboard's first page) loads neither torch nor scikit-learn.
"""

import typing as _typing

from layerscope import lazy as _lazy

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
    "ArrayBatches": "layerscope.projections.batches",
    "Batches": "layerscope.projections.batches",
    "Isomap": "layerscope.projections.isomap",
    "LDA": "layerscope.projections.lda",
    "PCA": "layerscope.projections.pca",
    "Placement": "layerscope.projections.place",
    "Projection": "layerscope.projections.compute",
    "TSNE": "layerscope.projections.tsne",
    "UMAP": "layerscope.projections.umap",
    "compute_pca": "layerscope.projections.compute",
    "compute_projection": "layerscope.projections.compute",
    "fit_placement": "layerscope.projections.place",
    "knn_accuracy": "layerscope.projections.quality",
    "trustworthiness": "layerscope.projections.quality",
}


__getattr__, __dir__ = _lazy.attach(__name__, _LAZY, globals())


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
