from collections import OrderedDict

import pytest
import torch
from torch import nn

from layerscope.capture import ActivationRecorder, describe_layers, list_layers
from layerscope.errors import LayerNotFoundError
from layerscope.models import SeedCNN


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(OrderedDict(conv=nn.Conv2d(1, 2, 3), act=nn.ReLU()))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 3), nn.Dropout(0.5), nn.Linear(3, 2))

    def forward(self, x):
        return self.head(self.features(x))


def test_list_layers_of_a_hand_built_module():
    assert list_layers(Toy()) == ["features.conv", "head.1", "head.3"]


def test_seed_cnn_layers_and_shapes():
    model = SeedCNN()
    assert list_layers(model) == ["conv1", "conv2", "pool", "fc1", "fc2", "out"]
    shapes = {info.name: (info.kind, info.shape) for info in describe_layers(model, (1, 28, 28))}
    assert shapes == {
        "input": ("image", (1, 28, 28)),
        "conv1": ("conv", (16, 26, 26)),
        "conv2": ("conv", (32, 24, 24)),
        "pool": ("conv", (32, 12, 12)),
        "fc1": ("dense", (64,)),
        "fc2": ("dense", (64,)),
        "out": ("dense", (10,)),
    }


def test_recorder_records_post_activation_outputs():
    model = SeedCNN()
    x = torch.rand(5, 1, 28, 28)
    with ActivationRecorder(model, ["conv1", "fc2"]) as rec, torch.inference_mode():
        outputs = rec.run(x, stop_early=False)
        expected_conv1 = torch.relu(model.conv1[0](x))
    assert outputs["conv1"].shape == (5, 16, 26, 26)
    torch.testing.assert_close(outputs["conv1"], expected_conv1)
    assert outputs["fc2"].min() >= 0  # after ReLU
    assert outputs["__logits__"].shape == (5, 10)


def test_stop_early_skips_the_rest_of_the_network():
    model = SeedCNN()
    calls = []
    model.fc1.register_forward_hook(lambda *a: calls.append("fc1"))
    with ActivationRecorder(model, ["conv2"]) as rec, torch.inference_mode():
        outputs = rec.run(torch.rand(2, 1, 28, 28))
    assert set(outputs) == {"conv2"} and calls == []


def test_hooks_removed_and_mode_restored_even_on_error():
    model = SeedCNN().train()
    with pytest.raises(RuntimeError):
        with ActivationRecorder(model, ["conv1", "out"]) as rec:
            assert not model.training
            rec.run(torch.rand(1, 3, 28, 28))  # wrong channel count
    assert model.training
    assert all(len(m._forward_hooks) == 0 for m in model.modules())


def test_unknown_layer_gives_a_next_step():
    with pytest.raises(LayerNotFoundError, match=r"unknown layer 'fc3'\. Hint: 'layerscope layers RUN' lists them"):
        ActivationRecorder(SeedCNN(), ["fc3"])
