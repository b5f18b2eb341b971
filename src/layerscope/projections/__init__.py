"""2-D projections of layer activations: PCA, t-SNE, UMAP, LDA, Isomap (scikit-learn style), their quality, and the
placement of new inputs into them."""

from layerscope.projections.batches import ArrayBatches, Batches
from layerscope.projections.compute import METHODS, Projection, compute_pca, compute_projection
from layerscope.projections.isomap import Isomap
from layerscope.projections.lda import LDA
from layerscope.projections.pca import PCA
from layerscope.projections.place import Placement, fit_placement
from layerscope.projections.quality import knn_accuracy, trustworthiness
from layerscope.projections.tsne import TSNE
from layerscope.projections.umap import UMAP

__all__ = [
    "METHODS",
    "LDA",
    "PCA",
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
