"""Receptive fields: literal arithmetic on hand-built models, checked against the support of a gradient."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layerscope.errors import LayerNotFoundError
from layerscope.models.seed_cnn import SeedCNN
from layerscope.receptive import ReceptiveField, receptive_field


def chain(pool: type[nn.Module] = nn.MaxPool2d) -> nn.Sequential:
    # (1, 20, 20) -> "0" (2, 18, 18) -> "2" (2, 16, 16) -> "3" (2, 8, 8) -> "4" (1, 4, 4)
    return nn.Sequential(
        nn.Conv2d(1, 2, 3), nn.ReLU(), nn.Conv2d(2, 2, 3), pool(2), nn.Conv2d(2, 1, 3, stride=2, padding=1)
    )


def test_hand_built_chain_written_out():
    model = chain()
    assert receptive_field(model, "0", (1, 20, 20)) == ReceptiveField((3, 3), (1, 1), (0, 0))
    assert receptive_field(model, "1", (1, 20, 20)) == ReceptiveField((3, 3), (1, 1), (0, 0))  # ReLU passes through
    assert receptive_field(model, "2", (1, 20, 20)) == ReceptiveField((5, 5), (1, 1), (0, 0))
    assert receptive_field(model, "3", (1, 20, 20)) == ReceptiveField((6, 6), (2, 2), (0, 0))
    # 6 + (3 - 1) * 2 = 10 pixels, stride 2 * 2 = 4, one padded position before = 2 pixels above/left
    field = receptive_field(model, "4", (1, 20, 20))
    assert field == ReceptiveField((10, 10), (4, 4), (-2, -2))
    assert field.box(0, 0, (20, 20)) == (0, 0, 8, 8)  # clipped at the top-left
    assert field.box(1, 2, (20, 20)) == (2, 6, 12, 16)
    assert field.box(3, 3, (20, 20)) == (10, 10, 20, 20)
    assert receptive_field(model, "input", (1, 20, 20)).box(4, 5, (20, 20)) == (4, 5, 5, 6)


def positive(model: nn.Module) -> nn.Module:
    """Positive weights and biases: with a positive input nothing cancels and no ReLU is ever off."""
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(0.1, 1.0)
    return model


def gradient_support(model: nn.Module, layer: str, image_shape: tuple[int, int, int]) -> dict:
    """{(y, x): the set of input pixels with a nonzero gradient of channel 0 at (y, x)}, for an input of ones."""
    module = dict(model.named_modules())[layer]
    x = torch.ones((1, *image_shape), requires_grad=True)
    captured = {}
    handle = module.register_forward_hook(lambda m, a, out: captured.__setitem__("out", out))
    try:
        model(x)
    finally:
        handle.remove()
    out = captured["out"]
    support = {}
    for y in range(out.shape[2]):
        for x_ in range(out.shape[3]):
            (grad,) = torch.autograd.grad(out[0, 0, y, x_], x, retain_graph=True)
            support[(y, x_)] = {tuple(p) for p in grad[0].abs().sum(0).nonzero().tolist()}
    return support


def box_pixels(box: tuple[int, int, int, int]) -> set:
    top, left, bottom, right = box
    return {(y, x) for y in range(top, bottom) for x in range(left, right)}


@pytest.mark.parametrize(
    ("model", "image_shape"),
    [
        # max pooling routes the gradient to one pixel per window; average pooling has the same field
        (chain(nn.AvgPool2d), (1, 20, 20)),
        (
            nn.Sequential(
                nn.Conv2d(1, 2, 3, padding=1),
                nn.Conv2d(2, 2, 3, dilation=2, padding="same"),  # holes filled by the conv before
                nn.BatchNorm2d(2),
                nn.AvgPool2d(3, stride=2, padding=1),
                nn.Conv2d(2, 1, (3, 1), stride=(1, 2)),
            ),
            (1, 17, 23),
        ),
    ],
)
def test_boxes_are_exactly_where_the_gradient_is(model, image_shape):
    model = positive(model).eval()
    for layer, module in model.named_modules():
        if not layer or not isinstance(module, (nn.Conv2d, nn.AvgPool2d, nn.BatchNorm2d)):
            continue
        field = receptive_field(model, layer, image_shape)
        assert not field.whole_image
        for (y, x), pixels in gradient_support(model, layer, image_shape).items():
            assert pixels == box_pixels(field.box(y, x, image_shape[1:])), (layer, y, x, field)
    assert receptive_field(chain(nn.AvgPool2d), "4", (1, 20, 20)) == receptive_field(chain(), "4", (1, 20, 20))


def test_seed_cnn():
    model = SeedCNN()
    assert receptive_field(model, "conv1", (1, 28, 28)).size == (3, 3)
    assert receptive_field(model, "conv2", (1, 28, 28)).size == (5, 5)
    pool = receptive_field(model, "pool", (1, 28, 28))
    assert pool.size == (6, 6) and pool.stride == (2, 2) and pool.offset == (0, 0)
    assert pool.box(11, 11, (28, 28)) == (22, 22, 28, 28)
    for dense in ("fc1", "fc2", "out"):
        field = receptive_field(model, dense, (1, 28, 28))
        assert field.whole_image and field.box(0, 0, (28, 28)) == (0, 0, 28, 28)
        assert "Flatten" in field.reason


class FunctionalPool(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 2, 3)
        self.conv2 = nn.Conv2d(2, 2, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.max_pool2d(self.conv1(x), 2))  # the pooling is no module: hooks cannot see it


def test_unseen_spatial_change_means_the_whole_image_and_the_model_is_left_alone():
    model = FunctionalPool().train()
    assert receptive_field(model, "conv1", (1, 16, 16)).size == (3, 3)
    field = receptive_field(model, "conv2", (1, 16, 16))
    assert field.whole_image and "outside any module" in field.reason
    assert model.training
    assert not any(m._forward_hooks for m in model.modules())
    with pytest.raises(LayerNotFoundError, match="conv3"):
        receptive_field(model, "conv3", (1, 16, 16))


def test_upsampling_means_the_whole_image():
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Upsample(scale_factor=2), nn.Conv2d(1, 1, 3))
    assert receptive_field(model, "2", (1, 10, 10)).whole_image
