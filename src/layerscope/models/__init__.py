"""Models: the report's CNN and the loading of any nn.Module from a spec."""

from layerscope.models.loading import build_model, load_weights, model_spec
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.models.seed_cnn import SeedCNN

__all__ = ["SeedCNN", "build_model", "load_weights", "model_spec", "pretrained_seed_cnn"]
