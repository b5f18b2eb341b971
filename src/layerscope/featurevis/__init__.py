"""Feature visualisation by optimisation: the input that most excites a conv channel, a dense neuron or a class logit.

Small composable pieces (after lucent): objectives that add and scale (``objectives``), image parameterisations
(``param``), robustness transforms (``transforms``), the optimisation loop and ``visualize`` (``render``), and the
per-unit cache in a Run with PNG output (``store``).

>>> vis = visualize(model, "conv2", image_shape=(1, 28, 28))   # all 32 channels in one batch
>>> vis.images.shape, vis.activation.shape                     # (32, 1, 1, 28, 28), (32, 1)
>>> fv = unit_featurevis(run, "conv2", 7)                      # cached in the Run: featurevis/conv2/7.npz
>>> save_png(np.concatenate([fv.naive[None], fv.images]), "unit7.png")   # naive beside regularised, 8x
"""

from layerscope.featurevis.objectives import (
    IMAGE,
    LOGITS,
    Objective,
    activation,
    channel,
    class_logit,
    diversity,
    high_frequency,
    neuron,
    total_variation,
    unit_activation,
)
from layerscope.featurevis.param import FourierImage, ImageParam, PixelImage
from layerscope.featurevis.render import RenderResult, Visualization, layer_units, render, visualize
from layerscope.featurevis.store import FeatureVis, cached_featurevis, layer_featurevis, save_png, unit_featurevis
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
    "FeatureVis",
    "FourierImage",
    "ImageParam",
    "Objective",
    "PixelImage",
    "RenderResult",
    "Transform",
    "Visualization",
    "activation",
    "cached_featurevis",
    "channel",
    "class_logit",
    "compose",
    "diversity",
    "high_frequency",
    "jitter",
    "layer_featurevis",
    "layer_units",
    "neuron",
    "random_rotate",
    "random_scale",
    "render",
    "save_png",
    "standard_transforms",
    "total_variation",
    "unit_activation",
    "unit_featurevis",
    "visualize",
]
