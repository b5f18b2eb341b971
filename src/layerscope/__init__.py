"""layerscope: open up a neural network that reads images, and see why it decides what it decides."""

__version__ = "0.1.0"

from layerscope.attribution import guided_backprop  # noqa: E402
from layerscope.capture import ActivationRecorder, LayerInfo, list_layers  # noqa: E402
from layerscope.data import Dataset, load_dataset, load_idx_dir, load_mnist, read_idx, write_idx  # noqa: E402
from layerscope.errors import LayerscopeError  # noqa: E402
from layerscope.featurevis import FeatureVis, save_png, unit_activation, unit_featurevis, visualize  # noqa: E402
from layerscope.models import SeedCNN, build_model  # noqa: E402
from layerscope.network import connections, incoming_weights  # noqa: E402
from layerscope.pipeline import train_run  # noqa: E402
from layerscope.projections import LDA, PCA, TSNE, UMAP, Isomap, compute_projection  # noqa: E402
from layerscope.receptive import receptive_field  # noqa: E402
from layerscope.run import Run  # noqa: E402
from layerscope.topk import TopK, compute_topk, store_topk  # noqa: E402
from layerscope.training import TrainConfig, evaluate, fit  # noqa: E402

__all__ = [
    "LDA",
    "PCA",
    "TSNE",
    "UMAP",
    "ActivationRecorder",
    "Dataset",
    "FeatureVis",
    "Isomap",
    "LayerInfo",
    "LayerscopeError",
    "Run",
    "SeedCNN",
    "TopK",
    "TrainConfig",
    "__version__",
    "build_model",
    "compute_projection",
    "compute_topk",
    "connections",
    "evaluate",
    "fit",
    "guided_backprop",
    "incoming_weights",
    "list_layers",
    "load_dataset",
    "load_idx_dir",
    "load_mnist",
    "read_idx",
    "receptive_field",
    "save_png",
    "store_topk",
    "train_run",
    "unit_activation",
    "unit_featurevis",
    "visualize",
    "write_idx",
]
