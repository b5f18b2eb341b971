"""Weights that ship with layerscope: the report's CNN trained on the bundled MNIST by ``layerscope train``.

They let the demo start without training; ``seed_cnn_mnist.json`` beside them records how they were made.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from torch import nn

from layerscope.cache import WEIGHTS_DIR
from layerscope.errors import LayerscopeError
from layerscope.models.loading import build_model, load_weights

__all__ = ["WEIGHTS_DIR", "pretrained_seed_cnn"]


def pretrained_seed_cnn(verify: bool = True) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """(model in eval mode, its spec, the provenance record) of the shipped MNIST weights."""
    weights = WEIGHTS_DIR / "seed_cnn_mnist.safetensors"
    provenance = json.loads((WEIGHTS_DIR / "seed_cnn_mnist.json").read_text())
    if verify and hashlib.sha256(weights.read_bytes()).hexdigest() != provenance["sha256"]:
        raise LayerscopeError(f"{weights} does not match its recorded SHA-256; reinstall layerscope.")
    spec = dict(provenance["model"])
    model = load_weights(build_model(spec), weights)
    return model.eval(), spec, provenance
