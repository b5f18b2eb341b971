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


class _Residual(nn.Module):
    """A block as ResNets write it: Dropout2d, an in-place ReLU6 and an empty nn.Sequential() as the shortcut."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 2, 3, padding=1)
        self.bn = nn.BatchNorm2d(2)
        self.act = nn.ReLU6(inplace=True)
        self.drop = nn.Dropout2d(0.1)
        self.shortcut = nn.Sequential()

    def forward(self, x):
        return self.drop(self.act(self.bn(self.conv(x)))) + self.shortcut(x)


def test_dropout_activations_and_empty_shortcuts_are_not_layers():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), _Residual(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    assert list_layers(model) == ["0", "1.conv", "1.bn", "3"]
    assert list_layers(model, include=["1.shortcut"]) == ["1.shortcut"]  # still there when asked for by name


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


def test_include_and_exclude_patterns():
    from tests.models import LeNetBN

    model = LeNetBN()
    assert list_layers(model) == ["conv1", "bn1", "conv2", "bn2", "fc1", "bn3", "fc2"]
    assert list_layers(model, include=["conv*", "fc*"]) == ["conv1", "conv2", "fc1", "fc2"]
    assert list_layers(model, exclude=["bn*"]) == ["conv1", "conv2", "fc1", "fc2"]
    assert list_layers(model, include=["drop"]) == ["drop"]  # an exact name adds a module the default skips
    assert list_layers(SeedCNN(), include=["fc*"]) == ["fc1", "fc2"]  # named layers are the default pool
    with pytest.raises(LayerNotFoundError, match=r"--include 'fc9\*' matches no layer; the model's layers are conv1, "):
        list_layers(model, include=["fc9*"])
    with pytest.raises(LayerNotFoundError, match="leave no layer"):
        list_layers(model, include=["bn*"], exclude=["*"])


class Unordered(nn.Module):
    """Modules defined in another order than they run, and one that never runs."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(8, 2)
        self.unused = nn.Linear(3, 3)
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(4, 8))

    def forward(self, x):
        return self.head(torch.relu(self.body(x)))


def test_layers_in_the_order_they_run_and_unused_ones_left_out():
    model = Unordered()
    assert [i.name for i in describe_layers(model, (1, 2, 2))] == ["input", "body.1", "head"]
    with pytest.raises(LayerNotFoundError, match="'unused' does not run"):
        describe_layers(model, (1, 2, 2), ["unused", "head"])


def test_model_that_does_not_fit_the_images_or_classes():
    from layerscope.errors import ModelMismatchError
    from tests.models import MLP

    with pytest.raises(ModelMismatchError, match=r"does not accept 3x16x16 images \(mat1 and mat2 .*in_channels=3"):
        describe_layers(MLP(), (3, 16, 16))
    with pytest.raises(ModelMismatchError, match="outputs 10 classes but the dataset has 3; .*num_classes=3"):
        describe_layers(MLP(), (1, 28, 28), num_classes=3)


class Viewing(nn.Module):
    """A forward that calls .view on a feature map, which channels-last tensors refuse."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.fc = nn.Linear(4 * 4 * 4, 2)

    def forward(self, x):
        x = self.conv(x)
        return self.fc(x.view(x.size(0), -1))


def test_models_that_cannot_run_channels_last_still_train():
    import numpy as np

    from layerscope.data.datasets import Dataset
    from layerscope.training import TrainConfig, fit, preferred_memory_format

    model = Viewing()
    assert preferred_memory_format(model, (3, 6, 6)) == torch.contiguous_format
    assert preferred_memory_format(SeedCNN(3, 2, 12), (3, 12, 12)) == torch.channels_last
    rng = np.random.default_rng(0)
    data = Dataset(
        "v",
        rng.integers(0, 255, (33, 3, 6, 6), dtype=np.uint8),
        np.arange(33) % 2,
        np.array([0] * 17 + [1] * 16, np.uint8),
        ("a", "b"),
    )
    # 17 training images in batches of 8 leave one alone; batch norm would refuse it, so it sits the epoch out
    history = fit(nn.Sequential(model, nn.BatchNorm1d(2)), data, TrainConfig(epochs=1, batch_size=8, device="cpu"))
    assert len(history) == 1


def test_model_args_are_json_or_strings():
    from layerscope.errors import LayerscopeError
    from layerscope.models.loading import parse_model_args

    assert parse_model_args(["num_classes=3", "hidden=[64, 32]", "act=gelu", "p=0.5", "flag=true"]) == {
        "num_classes": 3,
        "hidden": [64, 32],
        "act": "gelu",
        "p": 0.5,
        "flag": True,
    }
    with pytest.raises(LayerscopeError, match="write it as name=value"):
        parse_model_args(["3"])


def test_one_images_layer_outputs_come_as_numpy_feature_maps():
    import numpy as np

    from layerscope.capture import image_layer_outputs, image_pixels, layer_outputs

    torch.manual_seed(0)
    model = SeedCNN().eval()
    image = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(1, 28, 28)  # (C, H, W), as a Run keeps its images
    outputs = image_layer_outputs(model, image, ["conv1", "pool", "fc1"])
    assert list(outputs) == ["conv1", "pool", "fc1"]
    assert all(isinstance(v, np.ndarray) and v.dtype == np.float32 for v in outputs.values())
    assert outputs["conv1"].shape == (16, 26, 26) and outputs["pool"].shape == (32, 12, 12)
    assert outputs["fc1"].shape == (64,)
    expected = layer_outputs(model, image_pixels(image), ["pool"])["pool"][0].numpy()
    np.testing.assert_array_equal(outputs["pool"], expected)
    assert float(np.abs(outputs["conv1"]).max()) > 0  # a real pass, not a blank
    # a drawing's (H, W) gives the same maps as the (1, H, W) image
    np.testing.assert_array_equal(image_layer_outputs(model, image[0], ["pool"])["pool"], expected)
