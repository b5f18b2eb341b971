"""Switching units off in any captured node of a graph model (a residual block's add, its output) re-runs the rest
of the graph: the logits match a direct forward pass with those channels zeroed, shortcut and all."""

from __future__ import annotations

import numpy as np
import torch

from layerscope.ablation import Ablation, evaluate_ablation
from layerscope.data import load_dataset
from layerscope.pipeline import train_run
from layerscope.tracing import source_model
from layerscope.training import TrainConfig
from tests.conftest import make_image_folder


def test_ablating_a_block_add_runs_the_rest_of_the_graph(tmp_path):
    data = load_dataset(make_image_folder(tmp_path / "shapes", n=48, size=32, channels=3, classes=4))
    spec = {"class": "tests.models:SmallResNet", "args": {"in_channels": 3, "num_classes": 4, "image_size": 32}}
    include = ["stem.0", "block2.add", "block*.relu_1", "fc"]
    run = train_run(
        tmp_path / "run", data, TrainConfig(epochs=1, batch_size=16, device="cpu"), spec=spec, include=include
    )
    off = Ablation("block2.add", (0, 3, 5))
    result = evaluate_ablation(run, [off], split=None)
    # the same by hand: block2's add with channels 0, 3 and 5 zeroed, then ReLU, block3, pool, fc
    model = source_model(run.load_model()).eval()
    x = data.pixels(np.arange(len(data)))
    with torch.no_grad():
        h = model.block1(model.stem(x))
        b = model.block2
        added = b.shortcut(h) + b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(h)))))
        added[:, [0, 3, 5]] = 0
        logits = model.fc(torch.flatten(model.pool(model.block3(torch.relu(added))), 1))
    expected = torch.softmax(logits, 1).numpy()
    np.testing.assert_allclose(result.probs, expected, atol=1e-5)
    assert result.resumed_from is None  # a conv node: the pass starts from the pixels
    # switching a whole block output off changes what the model predicts
    everything = Ablation("block3.relu_1", tuple(range(32)))
    flat = evaluate_ablation(run, [everything], split=None).probs
    assert np.ptp(flat, axis=0).max() < 1e-6  # every image now gets the same probabilities (only fc's bias is left)
