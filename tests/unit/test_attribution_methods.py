"""Class attributions (saliency, integrated gradients, Grad-CAM, occlusion) and the model-randomisation sanity check,
by captum, on the shipped MNIST model and on small models of other shapes; and the ``attribute`` command."""

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.attribution import ATTRIBUTIONS, attribute, gradcam_layers, overlay, randomisation_check
from layerscope.data import load_mnist
from layerscope.errors import LayerNotFoundError, LayerscopeError
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.progress import Cancelled, stoppable
from tests.conftest import cli, make_idx_dir, one_line_error, sheet_tiles
from tests.models import MLP, LeNetBN

METHODS = list(ATTRIBUTIONS)


@pytest.fixture(scope="module")
def mnist():
    model, _, _ = pretrained_seed_cnn()
    return model, load_mnist().images[0]  # (1, 28, 28) uint8, a 5 the model gets right


@pytest.fixture(scope="module")
def colour():
    """An untrained 3-channel LeNetBN (4 classes) and a 16x16 colour image, float in [0, 1]."""
    torch.manual_seed(0)
    model = LeNetBN(in_channels=3, num_classes=4, image_size=16).eval()
    image = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    return model, image


def no_hooks(model: torch.nn.Module) -> bool:
    return not any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks for m in model.modules()
    )


def state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def assert_same_state(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert after.keys() == before.keys()
    for name, value in after.items():
        assert torch.equal(value, before[name]), name


def test_integrated_gradients_are_complete(mnist):
    """The attributions sum to f(x) - f(black) for the target class, up to captum's small convergence delta."""
    model, image = mnist
    x = torch.from_numpy(image).float().div(255).unsqueeze(0)
    with torch.no_grad():
        difference = (model(x) - model(torch.zeros_like(x)))[0, 5].item()
    result = attribute(model, image, "integrated_gradients", n_steps=64)
    assert result.method == "integrated_gradients" and result.target == 5 == result.predicted
    assert result.map.shape == (1, 28, 28) and result.map.dtype == np.float32
    assert abs(difference) > 1
    assert abs(result.delta) < 0.05 * abs(difference)
    assert result.map.sum() == pytest.approx(difference, rel=0.05)
    assert result.map.sum() - difference == pytest.approx(result.delta, abs=1e-3)  # captum's delta, as documented
    assert result.layer is None and result.seconds > 0


def test_each_method_on_the_shipped_model(mnist):
    model, image = mnist
    for method in METHODS:
        result = attribute(model, image, method)
        assert result.target == result.predicted == 5, method
        assert result.map.shape == ((28, 28) if method == "gradcam" else (1, 28, 28)), method
        assert np.isfinite(result.map).all() and np.abs(result.map).max() > 0, method
        assert (result.delta is not None) == (method == "integrated_gradients"), method
    assert (attribute(model, image, "saliency").map >= 0).all()  # absolute gradients
    # the command line's spelling works too, and a uint8 image gives what its float copy gives
    as_float = torch.from_numpy(image).float() / 255
    np.testing.assert_allclose(
        attribute(model, as_float.unsqueeze(0), "integrated-gradients").map,
        attribute(model, image, "integrated_gradients").map,
        rtol=1e-5,
        atol=1e-6,
    )


def test_gradcam_maps_the_image_and_refuses_a_dense_layer(mnist):
    model, image = mnist
    default = attribute(model, image, "gradcam")
    # the last convolution, in the command line and the page alike; not the pooling after it
    assert gradcam_layers(model, (1, 28, 28)) == ["conv1", "conv2"] and default.layer == "conv2"
    assert gradcam_layers(model, (1, 28, 28), conv=["conv1", "conv2", "pool"]) == ["conv1", "conv2"]  # as a Run lists
    for layer in ("conv1", "conv2", "pool"):
        cam = attribute(model, image, "gradcam", layer=layer)
        assert cam.layer == layer and cam.map.shape == (28, 28)
        assert cam.map.min() >= 0 and cam.map.max() > 0, layer  # ReLU-ed
    with pytest.raises(LayerscopeError, match=r"conv layer.*'fc1' is dense; choose a conv layer: conv1, conv2, pool"):
        attribute(model, image, "gradcam", layer="fc1")
    with pytest.raises(LayerNotFoundError, match="fc3"):
        attribute(model, image, "gradcam", layer="fc3")
    with pytest.raises(LayerscopeError, match="has none"):
        attribute(MLP(), image, "gradcam")
    assert no_hooks(model)


def test_gradcam_does_not_default_to_a_map_of_one_pixel():
    # a ResNet's tail: a conv block, then a 1x1 conv on a globally pooled map (C x 1 x 1): its map would be uniform
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Conv2d(4, 4, 1),
        nn.Flatten(),
        nn.Linear(4, 3),
    )
    assert gradcam_layers(model, (1, 8, 8)) == ["0"]
    assert attribute(model, torch.rand(1, 8, 8), "gradcam").layer == "0"
    only = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(1, 4, 1), nn.Flatten(), nn.Linear(4, 3))
    assert gradcam_layers(only, (1, 8, 8)) == ["1"]  # the only one there is


def test_three_channel_model_shapes_and_targets(colour):
    model, image = colour
    for method in METHODS:
        result = attribute(model, image, method, target=1)
        assert result.map.shape == ((16, 16) if method == "gradcam" else (3, 16, 16)), method
        assert result.target == 1 and result.map.dtype == np.float32
        other = attribute(model, image, method, target=2)
        assert not np.allclose(result.map, other.map), method
    assert attribute(model, image, "gradcam").layer == "conv2"  # the last convolution (bn2 follows it)
    occluded = attribute(model, image, "occlusion").map
    np.testing.assert_array_equal(occluded[0], occluded[2])  # the patch covers every channel at once
    # an MLP on 12x12 grey images: no conv layers needed but for Grad-CAM
    mlp = MLP(image_size=12, num_classes=3).eval()
    for method in ("saliency", "integrated_gradients", "occlusion"):
        assert attribute(mlp, torch.rand(1, 12, 12), method).map.shape == (1, 12, 12)


def test_occlusion_window_scales_with_the_image(colour):
    """4x4 moved by 2 on 28x28 is a 2x2 patch moved by 1 on 16x16: a patch's effect spans 2 pixels, not 4."""
    model, image = colour
    default = attribute(model, image, "occlusion").map
    explicit = attribute(model, image, "occlusion", window=2, stride=1).map
    np.testing.assert_allclose(default, explicit, rtol=1e-5, atol=1e-6)
    assert not np.allclose(default, attribute(model, image, "occlusion", window=(4, 4), stride=2).map)


def test_model_is_left_as_found(colour):
    """Train mode, frozen parameters and weights survive; no gradients accumulate and no hooks remain."""
    model, image = colour
    before = state(model)
    eval_maps = {method: attribute(model, image, method).map for method in METHODS}
    model.train()
    model.fc1.weight.requires_grad_(False)
    try:
        for method in METHODS:
            # BatchNorm1d in train mode refuses a batch of one: equal maps show the methods ran in eval mode
            np.testing.assert_array_equal(attribute(model, image, method).map, eval_maps[method], err_msg=method)
            assert model.training, method
            assert no_hooks(model), method
        assert not model.fc1.weight.requires_grad and model.fc1.bias.requires_grad
        assert all(p.grad is None for p in model.parameters())
        assert_same_state(model, before)
    finally:
        model.eval()
        model.fc1.weight.requires_grad_(True)


def test_errors(mnist):
    model, image = mnist
    with pytest.raises(LayerscopeError, match="unknown attribution method 'lime'"):
        attribute(model, image, "lime")
    with pytest.raises(LayerscopeError, match="out of range: the model has classes 0 to 9"):
        attribute(model, image, "saliency", target=10)
    with pytest.raises(LayerscopeError, match="only gradcam takes a layer"):
        attribute(model, image, "saliency", layer="conv2")
    with pytest.raises(LayerscopeError, match="takes no option 'window'"):
        attribute(model, image, "integrated_gradients", window=3)
    with pytest.raises(LayerscopeError, match="does not accept a 3x28x28 image"):
        attribute(model, np.zeros((3, 28, 28), np.uint8), "saliency")
    with pytest.raises(LayerscopeError, match=r"\(C, H, W\)"):
        attribute(model, image[0], "saliency")
    assert no_hooks(model) and not model.training


def test_randomisation_check_on_the_shipped_model(mnist):
    """Saliency depends on the weights: its map decorrelates as layers are re-initialised from the top."""
    model, image = mnist
    before = state(model)
    rng = torch.random.get_rng_state()
    steps = randomisation_check(model, image, "saliency")
    assert [s.randomised for s in steps] == [
        (),
        ("out",),
        ("out", "fc2"),
        ("out", "fc2", "fc1"),
        ("out", "fc2", "fc1", "conv2"),
        ("out", "fc2", "fc1", "conv2", "conv1"),
    ]
    spearman = [s.spearman for s in steps]
    assert spearman[0] == 1 and steps[0].ssim == 1
    assert all(s < 1 for s in spearman[1:]) and all(s.ssim < 1 for s in steps[1:])
    assert spearman[-1] < 0.5 and spearman[-1] < spearman[1]
    np.testing.assert_array_equal(steps[0].map, attribute(model, image, "saliency").map)
    assert all(s.map.shape == (1, 28, 28) for s in steps)
    # the trained model and the global random state are untouched; the seed makes the steps repeatable
    assert_same_state(model, before)
    assert torch.equal(torch.random.get_rng_state(), rng)
    assert no_hooks(model) and not model.training
    top = randomisation_check(model, image, "saliency", layers=["out"])
    assert len(top) == 2
    np.testing.assert_array_equal(top[1].map, steps[1].map)
    assert not np.array_equal(randomisation_check(model, image, "saliency", layers=["out"], seed=1)[1].map, top[1].map)
    with pytest.raises(LayerscopeError, match="'pool' has no weights"):
        randomisation_check(model, image, "saliency", layers=["pool"])


def test_randomisation_check_of_gradcam_on_a_batchnorm_model(colour):
    model, image = colour
    before = state(model)
    calls = []
    steps = randomisation_check(model, image, "gradcam", target=2, layer="conv2", progress=lambda *c: calls.append(c))
    assert steps[-1].randomised == ("fc2", "bn3", "fc1", "bn2", "conv2", "bn1", "conv1")  # output first
    assert all(s.map.shape == (16, 16) for s in steps)
    assert all(np.isnan(s.spearman) or -1 <= s.spearman <= 1 for s in steps)
    assert_same_state(model, before)
    # one progress step per map (the trained model's, then one per layer re-initialised), where a cancel stops it
    assert calls == [("randomisation", i, len(steps)) for i in range(len(steps) + 1)]
    reports = []
    stop_after_two = stoppable(lambda *c: reports.append(c), lambda: len(reports) >= 2)
    with pytest.raises(Cancelled):
        randomisation_check(model, image, "gradcam", target=2, layer="conv2", progress=stop_after_two)
    assert len(reports) == 2 and not model.training
    assert_same_state(model, before)


def test_overlay_colours_positive_red_and_negative_blue():
    image = np.full((1, 4, 4), 128, np.uint8)
    heat = np.zeros((4, 4), np.float32)
    heat[0, 0], heat[3, 3] = 2.0, -1.0
    picture = overlay(image, heat)
    assert picture.shape == (3, 4, 4) and picture.min() >= 0 and picture.max() <= 1
    assert picture[0, 0, 0] > picture[2, 0, 0]  # red
    assert picture[2, 3, 3] > picture[0, 3, 3]  # blue
    assert picture[0, 1, 1] == picture[1, 1, 1] == picture[2, 1, 1]  # grey where the map is 0
    with pytest.raises(LayerscopeError, match="the map is 4x4 but the image 5x5"):
        overlay(np.zeros((1, 5, 5)), heat)


# -- the command ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    """The report's CNN trained for one epoch on 96 toy 12x12 images of 3 classes: a Run in seconds."""
    from layerscope.data import load_dataset
    from layerscope.pipeline import train_run
    from layerscope.training import TrainConfig

    data = make_idx_dir(tmp_path_factory.mktemp("toy") / "toy", n_train=64, n_test=32, size=12)
    return train_run(
        tmp_path_factory.mktemp("runs") / "small", load_dataset(str(data)), TrainConfig(device="cpu", epochs=1)
    )


def test_attribute_command(small_run, tmp_path, capsys):
    run = small_run
    index = len(run.labels) - 1  # a test image
    png = tmp_path / "ig.png"
    code, out, err = cli(
        capsys, "attribute", run.path, "--image", index, "--method", "integrated-gradients", "--out", png
    )
    assert code == 0, err
    name, label = run.names[index], run.class_names[run.labels[index]]
    assert f"{name}: label {label}, predicted" in out
    assert "integrated-gradients for class" in out and "completeness: map sum" in out and "delta" in out
    assert sheet_tiles(png) == [(12 * 8, 12 * 8)] * 2  # the image beside the map

    png = tmp_path / "cam.png"
    args = ["attribute", run.path, "--image", 0, "--method", "gradcam", "--layer", "conv2", "--target", 2]
    code, out, err = cli(capsys, *args, "--randomise", "--out", png)
    assert code == 0, err
    assert "gradcam at conv2 for class 2" in out and "Spearman" in out and "nothing (trained)" in out
    assert "out down to conv1" in out
    assert sheet_tiles(png) == [(12 * 8, 12 * 8)] * 7  # image, map, and a map per re-initialised layer


def test_attribute_command_errors(small_run, tmp_path, capsys):
    run = small_run
    from layerscope.interop import import_nn_data
    from tests import nn_data

    n = len(run.labels)
    assert "out of range: the Run has images 0 to" in one_line_error(capsys, "attribute", run.path, "--image", n)
    assert "unknown method 'lime'" in one_line_error(capsys, "attribute", run.path, "--image", 0, "--method", "lime")
    line = one_line_error(capsys, "attribute", run.path, "--image", 0, "--method", "gradcam", "--layer", "fc1")
    assert "conv layer" in line and "conv1, conv2, pool" in line
    assert "out of range" in one_line_error(capsys, "attribute", run.path, "--image", 0, "--target", 3)
    assert ".png" in one_line_error(capsys, "attribute", run.path, "--image", 0, "--out", tmp_path / "x.jpg")
    no_model = import_nn_data(nn_data.write(tmp_path / "NN_data.json"), tmp_path / "imported")
    assert "has no model" in one_line_error(capsys, "attribute", no_model.path, "--image", 0)


@pytest.mark.parametrize(
    ("name", "layer"),
    [
        ("ResNet18", "layer4.1.relu_1"),  # the second call of torchvision's in-place ReLU, after layer4's last add
        ("SmallResNet", "block2.add"),  # a functional add
        ("BranchNet", "mix.cat"),  # a concatenation of two branches
    ],
)
def test_gradcam_on_graph_nodes_that_are_no_module_of_the_model(name, layer):
    from layerscope.tracing import trace_model
    from tests import models

    torch.manual_seed(0)
    graph_model, _ = trace_model(getattr(models, name)(), (3, 32, 32))
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    cam = attribute(graph_model, image, "gradcam", layer=layer)
    assert cam.layer == layer and cam.map.shape == (32, 32)
    assert cam.map.min() >= 0 and cam.map.max() > 0 and cam.map.var() > 0
    assert no_hooks(graph_model) and not graph_model.training


def test_gradcam_offers_every_conv_node_of_a_graph_model():
    from layerscope.models.seed_cnn import SeedCNN
    from layerscope.tracing import trace_model
    from tests.models import ResNet18

    graph_model, _ = trace_model(ResNet18(), (3, 32, 32))
    blocks = [f"layer{i}.{j}.relu_1" for i in range(1, 5) for j in range(2)]
    # the stem's conv and every block's output; not the max-pool after the stem, nor the 1x1 average pool
    assert gradcam_layers(graph_model, (3, 32, 32)) == ["conv1", *blocks]
    assert attribute(graph_model, torch.rand(3, 32, 32), "gradcam").layer == "layer4.1.relu_1"
    # as a Run lists its captured conv-shaped nodes (names only): adds and batch norms after a conv are offered too
    run_layers = ["conv1", "bn1", "maxpool", "layer1.0.conv1", "layer1.0.add", "layer1.0.relu_1", "avgpool"]
    offered = gradcam_layers(graph_model, (3, 32, 32), conv=run_layers)
    assert offered == ["conv1", "bn1", "layer1.0.conv1", "layer1.0.add", "layer1.0.relu_1"]
    # a chain traced as a Run loads it: as before, the convolutions and not the pooling after them
    seed, _ = trace_model(SeedCNN(), (1, 28, 28))
    assert gradcam_layers(seed, (1, 28, 28)) == ["conv1", "conv2"]
