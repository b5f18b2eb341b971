"""Feature visualisation by optimisation: the input that most excites a conv channel, a dense neuron or a class logit.

Small composable pieces (after lucent): objectives that add and scale (``objectives``), image parameterisations
(``param``), the statistics of the dataset's images they are drawn from and compared with (``prior``), robustness
transforms (``transforms``), the optimisation loop, ``visualize`` and ``accentuate`` (``render``), and the per-unit
cache in a Run with PNG output (``store``).

>>> vis = visualize(model, "conv2", image_shape=(1, 28, 28))   # all 32 channels in one batch
>>> vis.images.shape, vis.activation.shape                     # (32, 1, 1, 28, 28), (32, 1)
>>> fv = unit_featurevis(run, "conv2", 7)                      # cached in the Run: featurevis/conv2/7.npz
>>> fv.trust["far"], fv.trust["dataset_max"]                 # far from the data's statistics? the best image's value
>>> acc = accentuate(model, "fc1", 3, image, prior=run_prior(run))   # a real image nudged toward fc1 neuron 3
>>> save_png(np.concatenate([fv.naive[None], fv.images]), "unit7.png")   # naive beside regularised, 8x
"""

from layerscope.featurevis.objectives import (
    IMAGE,
    LOGITS,
    Objective,
    activation,
    channel,
    class_logit,
    class_margin,
    closeness,
    diversity,
    high_frequency,
    ink_excess,
    neuron,
    total_variation,
    unit_activation,
)
from layerscope.featurevis.param import DataImage, FourierImage, ImageParam, PixelImage, SpectrumImage
from layerscope.featurevis.prior import ImagePrior, distance_to_data, image_prior, image_statistics
from layerscope.featurevis.render import (
    Accentuation,
    RenderResult,
    Visualization,
    accentuate,
    layer_units,
    render,
    visualize,
)
from layerscope.featurevis.store import (
    FeatureVis,
    cached_featurevis,
    image_accentuation,
    layer_featurevis,
    run_prior,
    save_png,
    unit_featurevis,
)
from layerscope.featurevis.transforms import (
    Transform,
    compose,
    jitter,
    random_rotate,
    random_scale,
    standard_transforms,
)

__all__ = [
    "IMAGE",
    "LOGITS",
    "Accentuation",
    "DataImage",
    "FeatureVis",
    "FourierImage",
    "ImageParam",
    "ImagePrior",
    "SpectrumImage",
    "Objective",
    "PixelImage",
    "RenderResult",
    "Transform",
    "Visualization",
    "accentuate",
    "activation",
    "cached_featurevis",
    "channel",
    "class_logit",
    "class_margin",
    "closeness",
    "compose",
    "distance_to_data",
    "diversity",
    "high_frequency",
    "image_accentuation",
    "image_prior",
    "image_statistics",
    "ink_excess",
    "jitter",
    "layer_featurevis",
    "layer_units",
    "neuron",
    "random_rotate",
    "random_scale",
    "render",
    "run_prior",
    "save_png",
    "standard_transforms",
    "total_variation",
    "unit_activation",
    "unit_featurevis",
    "visualize",
]
