"""layerscope: open up a neural network that reads images, and see why it decides what it decides.

The names below are imported when first used (PEP 562), so ``import layerscope`` and the ``layerscope`` command
start without loading torch, scikit-learn or Dash until a command needs them.
"""

__version__ = "0.1.0"

import os
import typing as _typing

from layerscope import lazy as _lazy
from layerscope.allocator import keep_freed_memory as _keep_freed_memory

_keep_freed_memory()  # reuse freed tensor memory (see layerscope.allocator)

if _typing.TYPE_CHECKING:
    from layerscope.ablation import (
        Ablation,
        AblationResult,
        ablated,
        evaluate_ablation,
        list_ablations,
        predict_ablated,
        remove_ablation,
        save_ablation,
    )
    from layerscope.attribution import (
        Attribution,
        RandomisationStep,
        attribute,
        guided_backprop,
        randomisation_check,
    )
    from layerscope.capture import (
        ActivationRecorder,
        LayerInfo,
        list_layers,
    )
    from layerscope.compare import Comparison, compare_runs, linear_cka
    from layerscope.data import (
        Dataset,
        load_dataset,
        load_idx_dir,
        load_image_folder,
        load_mnist,
        read_idx,
        write_idx,
    )
    from layerscope.drawing import (
        NeighbourIndex,
        preprocess_digit,
        render_strokes,
    )
    from layerscope.errors import LayerscopeError
    from layerscope.featurevis import (
        FeatureVis,
        save_png,
        unit_activation,
        unit_featurevis,
        visualize,
    )
    from layerscope.interop import (
        export_nn_data,
        import_nn_data,
        read_nn_data,
    )
    from layerscope.models import SeedCNN, build_model
    from layerscope.network import connections, incoming_weights
    from layerscope.pipeline import demo_run, train_run
    from layerscope.projections import (
        LDA,
        PCA,
        TSNE,
        UMAP,
        Isomap,
        compute_projection,
    )
    from layerscope.receptive import receptive_field
    from layerscope.run import Run, open_run
    from layerscope.topk import TopK, compute_topk, store_topk
    from layerscope.training import TrainConfig, evaluate, fit

_LAZY = {
    "Ablation": "layerscope.ablation",
    "AblationResult": "layerscope.ablation",
    "ActivationRecorder": "layerscope.capture",
    "Attribution": "layerscope.attribution",
    "Comparison": "layerscope.compare",
    "compare_runs": "layerscope.compare",
    "linear_cka": "layerscope.compare",
    "Dataset": "layerscope.data",
    "FeatureVis": "layerscope.featurevis",
    "Isomap": "layerscope.projections",
    "LDA": "layerscope.projections",
    "LayerInfo": "layerscope.capture",
    "LayerscopeError": "layerscope.errors",
    "NeighbourIndex": "layerscope.drawing",
    "PCA": "layerscope.projections",
    "RandomisationStep": "layerscope.attribution",
    "Run": "layerscope.run",
    "SeedCNN": "layerscope.models",
    "TSNE": "layerscope.projections",
    "TopK": "layerscope.topk",
    "TrainConfig": "layerscope.training",
    "UMAP": "layerscope.projections",
    "ablated": "layerscope.ablation",
    "attribute": "layerscope.attribution",
    "build_model": "layerscope.models",
    "compute_projection": "layerscope.projections",
    "compute_topk": "layerscope.topk",
    "connections": "layerscope.network",
    "evaluate": "layerscope.training",
    "evaluate_ablation": "layerscope.ablation",
    "export_nn_data": "layerscope.interop",
    "fit": "layerscope.training",
    "guided_backprop": "layerscope.attribution",
    "import_nn_data": "layerscope.interop",
    "demo_run": "layerscope.pipeline",
    "incoming_weights": "layerscope.network",
    "list_ablations": "layerscope.ablation",
    "list_layers": "layerscope.capture",
    "load_dataset": "layerscope.data",
    "load_idx_dir": "layerscope.data",
    "load_image_folder": "layerscope.data",
    "load_mnist": "layerscope.data",
    "open_run": "layerscope.run",
    "predict_ablated": "layerscope.ablation",
    "preprocess_digit": "layerscope.drawing",
    "randomisation_check": "layerscope.attribution",
    "read_idx": "layerscope.data",
    "read_nn_data": "layerscope.interop",
    "receptive_field": "layerscope.receptive",
    "remove_ablation": "layerscope.ablation",
    "render_strokes": "layerscope.drawing",
    "save_ablation": "layerscope.ablation",
    "save_png": "layerscope.featurevis",
    "store_topk": "layerscope.topk",
    "train_run": "layerscope.pipeline",
    "unit_activation": "layerscope.featurevis",
    "unit_featurevis": "layerscope.featurevis",
    "visualize": "layerscope.featurevis",
    "write_idx": "layerscope.data",
}


__getattr__, __dir__ = _lazy.attach("layerscope", _LAZY, globals())


def show(
    run: "Run | str | os.PathLike[str]",
    port: int | None = None,
    height: int = 900,
    trust_model_code: bool = False,
    allow_hosts: "list[str] | None" = None,
) -> str:
    """The dashboard of a Run, a Run directory or an NN_data.json file: inline in a notebook, else a printed URL.
    ``trust_model_code`` as for ``Run``: needed when the Run's model is not layerscope's own; ``allow_hosts``: host
    names the page is reached by besides this machine's loopback (a notebook behind a proxy that rewrites Host).

    >>> import layerscope as ls
    >>> ls.show("runs/mnist")          # or ls.show("NN_data.json")
    """
    from layerscope.dashboard.app import show as _show

    return _show(run, port=port, height=height, trust_model_code=trust_model_code, allow_hosts=allow_hosts)


__all__ = [
    "Ablation",
    "AblationResult",
    "ActivationRecorder",
    "Attribution",
    "Comparison",
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
    "compare_runs",
    "compute_projection",
    "compute_topk",
    "connections",
    "evaluate",
    "evaluate_ablation",
    "export_nn_data",
    "fit",
    "demo_run",
    "guided_backprop",
    "import_nn_data",
    "incoming_weights",
    "linear_cka",
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
