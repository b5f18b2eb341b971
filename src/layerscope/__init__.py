"""layerscope: open up a neural network that reads images, and see why it decides what it decides."""

__version__ = "0.1.0"

from layerscope.capture import ActivationRecorder, LayerInfo, list_layers  # noqa: E402
from layerscope.data import Dataset, load_dataset, load_idx_dir, load_mnist, read_idx, write_idx  # noqa: E402
from layerscope.errors import LayerscopeError  # noqa: E402
from layerscope.models import SeedCNN, build_model  # noqa: E402
from layerscope.pipeline import train_run  # noqa: E402
from layerscope.projections import LDA, PCA, TSNE, UMAP, Isomap, compute_projection  # noqa: E402
from layerscope.run import Run  # noqa: E402
from layerscope.training import TrainConfig, evaluate, fit  # noqa: E402

__all__ = [
    "LDA",
    "PCA",
    "TSNE",
    "UMAP",
    "ActivationRecorder",
    "Dataset",
    "Isomap",
    "LayerInfo",
    "LayerscopeError",
    "Run",
    "SeedCNN",
    "TrainConfig",
    "__version__",
    "build_model",
    "compute_projection",
    "evaluate",
    "fit",
    "list_layers",
    "load_dataset",
    "load_idx_dir",
    "load_mnist",
    "read_idx",
    "train_run",
    "write_idx",
]
