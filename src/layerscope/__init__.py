"""layerscope: open up a neural network that reads images, and see why it decides what it decides."""

__version__ = "0.1.0"

import os  # noqa: E402

from layerscope.allocator import keep_freed_memory as _keep_freed_memory  # noqa: E402

_keep_freed_memory()  # reuse freed tensor memory (see layerscope.allocator)

from layerscope.ablation import (  # noqa: E402
    Ablation,
    AblationResult,
    ablated,
    evaluate_ablation,
    list_ablations,
    predict_ablated,
    remove_ablation,
    save_ablation,
)
from layerscope.attribution import (  # noqa: E402
    Attribution,
    RandomisationStep,
    attribute,
    guided_backprop,
    randomisation_check,
)
from layerscope.capture import ActivationRecorder, LayerInfo, list_layers  # noqa: E402
from layerscope.data import (  # noqa: E402
    Dataset,
    load_dataset,
    load_idx_dir,
    load_image_folder,
    load_mnist,
    read_idx,
    write_idx,
)
from layerscope.drawing import NeighbourIndex, preprocess_digit, render_strokes  # noqa: E402
from layerscope.errors import LayerscopeError  # noqa: E402
from layerscope.featurevis import FeatureVis, save_png, unit_activation, unit_featurevis, visualize  # noqa: E402
from layerscope.interop import export_nn_data, import_nn_data, read_nn_data  # noqa: E402
from layerscope.models import SeedCNN, build_model  # noqa: E402
from layerscope.network import connections, incoming_weights  # noqa: E402
from layerscope.pipeline import open_run, train_run  # noqa: E402
from layerscope.projections import LDA, PCA, TSNE, UMAP, Isomap, compute_projection  # noqa: E402
from layerscope.receptive import receptive_field  # noqa: E402
from layerscope.run import Run  # noqa: E402
from layerscope.topk import TopK, compute_topk, store_topk  # noqa: E402
from layerscope.training import TrainConfig, evaluate, fit  # noqa: E402


def show(run: Run | str | os.PathLike[str], port: int | None = None, height: int = 900) -> str:
    """The dashboard of a Run, a Run directory or an NN_data.json file: inline in a notebook, else a printed URL.

    >>> import layerscope as ls
    >>> ls.show("runs/mnist")          # or ls.show("NN_data.json")
    """
    from layerscope.dashboard.app import show as _show

    return _show(run, port=port, height=height)


__all__ = [
    "Ablation",
    "AblationResult",
    "ActivationRecorder",
    "Attribution",
    "Dataset",
    "FeatureVis",
    "Isomap",
    "LDA",
    "LayerInfo",
    "LayerscopeError",
    "NeighbourIndex",
    "PCA",
    "RandomisationStep",
    "Run",
    "SeedCNN",
    "TSNE",
    "TopK",
    "TrainConfig",
    "UMAP",
    "__version__",
    "ablated",
    "attribute",
    "build_model",
    "compute_projection",
    "compute_topk",
    "connections",
    "evaluate",
    "evaluate_ablation",
    "export_nn_data",
    "fit",
    "guided_backprop",
    "import_nn_data",
    "incoming_weights",
    "list_ablations",
    "list_layers",
    "load_dataset",
    "load_idx_dir",
    "load_image_folder",
    "load_mnist",
    "open_run",
    "predict_ablated",
    "preprocess_digit",
    "randomisation_check",
    "read_idx",
    "read_nn_data",
    "receptive_field",
    "remove_ablation",
    "render_strokes",
    "save_ablation",
    "save_png",
    "show",
    "store_topk",
    "train_run",
    "unit_activation",
    "unit_featurevis",
    "visualize",
    "write_idx",
]
