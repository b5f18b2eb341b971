"""Guided backpropagation and deconvolution of one unit, by captum, on the shipped MNIST model."""

import numpy as np
import pytest
import torch

from layerscope.attribution import guided_backprop, unit_target
from layerscope.capture import layer_outputs
from layerscope.data import load_mnist
from layerscope.errors import LayerNotFoundError, LayerscopeError
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.receptive import receptive_field

LAYERS = ["conv1", "conv2", "pool", "fc1", "fc2", "out"]


@pytest.fixture(scope="module")
def model_and_image():
    model, _, _ = pretrained_seed_cnn()
    return model, load_mnist().images[0]  # (1, 28, 28) uint8, a 5


def no_hooks(model: torch.nn.Module) -> bool:
    return not any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or m._backward_pre_hooks for m in model.modules()
    )


def ranked_units(model, image, layer):
    """The layer's units for this image, most active first (a conv channel by its maximum)."""
    output = layer_outputs(model, torch.from_numpy(image).float() / 255, [layer])[layer][0]
    scores = output.flatten(1).amax(1) if output.ndim == 3 else output  # (C, H, W) -> (C,)
    return scores.argsort(descending=True).tolist()


@pytest.mark.parametrize("method", ["guided", "deconv"])
def test_maps_have_the_image_shape_and_differ_between_units(model_and_image, method):
    model, image = model_and_image
    for layer in ["conv2", "pool", "fc1", "fc2", "out"]:
        a, b = ranked_units(model, image, layer)[:2]
        first = guided_backprop(model, image, layer, a, method)
        second = guided_backprop(model, image, layer, b, method)
        assert first.shape == (1, 28, 28) and first.dtype == np.float32
        assert np.abs(first).max() > 0 and np.abs(second).max() > 0, layer
        assert not np.allclose(first, second), layer


def test_an_inactive_unit_passes_nothing_back_under_guided_backprop(model_and_image):
    model, image = model_and_image
    dead = ranked_units(model, image, "fc2")[-1]
    assert unit_target(model, torch.from_numpy(image).float().unsqueeze(0) / 255, "fc2", dead).activation == 0
    assert not guided_backprop(model, image, "fc2", dead).any()  # its ReLU is off: no positive path
    assert guided_backprop(model, image, "fc2", dead, "deconv").any()  # deconvolution ignores the forward mask


def test_guided_and_deconv_differ_and_float_input_gives_the_same(model_and_image):
    model, image = model_and_image
    guided = guided_backprop(model, image, "out", 5)
    assert not np.allclose(guided, guided_backprop(model, image, "out", 5, "deconv"))
    as_float = torch.from_numpy(image.astype(np.float32) / 255.0)
    np.testing.assert_allclose(guided_backprop(model, as_float, "out", 5), guided, rtol=1e-5, atol=1e-7)


def test_first_conv_channel_gives_its_kernel_at_the_maximum(model_and_image):
    """conv1 -> ReLU: the gradient of one active position is the kernel over that position's 3x3 field."""
    model, image = model_and_image
    target = unit_target(model, torch.from_numpy(image).float().unsqueeze(0) / 255, "conv1", 7)
    conv1 = layer_outputs(model, torch.from_numpy(image).float() / 255, ["conv1"])["conv1"][0, 7]
    assert target.activation == pytest.approx(conv1.max().item()) and target.activation > 0
    assert conv1[target.position].item() == conv1.max().item()
    top, left, bottom, right = receptive_field(model, "conv1", (1, 28, 28)).box(*target.position, (28, 28))
    kernel = model.conv1[0].weight[7].detach().numpy()  # (1, 3, 3)
    for method in ("guided", "deconv"):
        result = guided_backprop(model, image, "conv1", 7, method)
        np.testing.assert_allclose(result[:, top:bottom, left:right], kernel, rtol=1e-5)
        result[:, top:bottom, left:right] = 0
        assert not result.any()


def test_model_is_left_as_found(model_and_image):
    model, image = model_and_image
    before = {k: v.clone() for k, v in model.state_dict().items()}
    unit = ranked_units(model, image, "fc1")[0]
    eval_result = guided_backprop(model, image, "fc1", unit)
    model.train()
    model.fc2[0].weight.requires_grad_(False)
    try:
        for method in ("guided", "deconv"):
            guided_backprop(model, image, "fc1", unit, method)
        np.testing.assert_array_equal(guided_backprop(model, image, "fc1", unit), eval_result)  # ran in eval mode
        assert model.training
        assert not model.fc2[0].weight.requires_grad and model.fc2[0].bias.requires_grad
        assert all(p.grad is None for p in model.parameters())
        assert no_hooks(model)
        for name, value in model.state_dict().items():
            assert torch.equal(value, before[name]), name
    finally:
        model.eval()
        model.fc2[0].weight.requires_grad_(True)


def test_errors(model_and_image):
    model, image = model_and_image
    with pytest.raises(LayerscopeError, match="unknown method"):
        guided_backprop(model, image, "out", 0, method="saliency")
    with pytest.raises(LayerscopeError, match="out of range"):
        guided_backprop(model, image, "conv2", 32)
    with pytest.raises(LayerscopeError, match="input"):
        guided_backprop(model, image, "input", 0)
    with pytest.raises(LayerNotFoundError, match="fc3"):
        guided_backprop(model, image, "fc3", 0)
    with pytest.raises(LayerscopeError, match=r"\(C, H, W\)"):
        guided_backprop(model, image[0], "out", 0)
    assert no_hooks(model)


class _ReferenceReLU(torch.autograd.Function):
    """A ReLU whose gradient is guided backprop's (positive gradients where it was on) or deconvolution's (positive
    gradients, the forward mask ignored): the overrides written out, for a plain autograd reference."""

    @staticmethod
    def forward(ctx, x, method):
        ctx.save_for_backward(x)
        ctx.method = method
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return (grad.clamp(min=0) * (x > 0) if ctx.method == "guided" else grad.clamp(min=0)), None


@pytest.mark.parametrize("method", ["guided", "deconv"])
@pytest.mark.parametrize(
    ("name", "layer", "block"),
    [
        ("ResNet18", "layer1.0.relu_1", "layer1.0"),  # nn.ReLU(inplace=True) called twice: its second call is a node
        ("ResNet18", "layer2.0.relu_1", "layer2.0"),  # behind layer1's second calls, overridden too
        ("SmallResNet", "block2.relu_1", "block2"),  # functional F.relu after the add
    ],
)
def test_guided_backprop_of_a_graph_node_overrides_every_relu(monkeypatch, name, layer, block, method):
    from torch.nn import functional as F

    from layerscope.tracing import trace_model
    from tests import models

    torch.manual_seed(0)
    model = getattr(models, name)().eval()
    graph_model, _ = trace_model(model, (3, 32, 32))
    image = torch.rand(3, 32, 32, generator=torch.Generator().manual_seed(1))
    unit = 3
    got = guided_backprop(graph_model, image, layer, unit, method)
    assert got.shape == (3, 32, 32) and np.abs(got).max() > 0
    assert no_hooks(graph_model)
    # by hand, on the model itself: every ReLU (the modules' and the functional ones, all F.relu underneath) has the
    # method's gradient, and the block's output (the node's) at the unit's maximum is differentiated
    target = unit_target(graph_model, image[None], layer, unit)
    monkeypatch.setattr(F, "relu", lambda x, inplace=False: _ReferenceReLU.apply(x, method))
    x = image[None].clone().requires_grad_(True)
    out = {}
    handle = dict(model.named_modules())[block].register_forward_hook(lambda m, a, o: out.__setitem__("o", o))
    try:
        model(x)
    finally:
        handle.remove()
    y, x_ = target.position
    (expected,) = torch.autograd.grad(out["o"][0, unit, y, x_], x)
    np.testing.assert_allclose(got, expected[0].numpy(), rtol=1e-4, atol=1e-6)
