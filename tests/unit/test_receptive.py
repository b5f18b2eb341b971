"""Receptive fields: literal arithmetic on hand-built models, checked against the support of a gradient."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from layerscope.errors import LayerNotFoundError
from layerscope.models.seed_cnn import SeedCNN
from layerscope.receptive import ReceptiveField, receptive_field
from layerscope.tracing import model_graph, trace_model


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


def gradient_support(
    model: nn.Module,
    layer: str,
    image_shape: tuple[int, int, int],
    image: torch.Tensor | None = None,
    channel: int | None = 0,
) -> dict:
    """{(y, x): the set of input pixels with a nonzero gradient of ``channel`` (None: the sum of all channels) at
    (y, x)}, for ``image`` (by default ones, in the model's dtype). One backward pass for all positions: copy b of
    the image (the model in eval mode keeps the copies apart) targets position b."""
    module = dict(model.named_modules())[layer]
    dtype = next(model.parameters()).dtype
    one = torch.ones((1, *image_shape), dtype=dtype) if image is None else image
    captured = {}
    handle = module.register_forward_hook(lambda m, a, out: captured.__setitem__("out", out))
    try:
        with torch.no_grad():
            model(one)
        h, w = captured["out"].shape[2:]
        x = one.repeat(h * w, 1, 1, 1).requires_grad_(True)  # (h * w, C, H, W)
        model(x)
    finally:
        handle.remove()
    out = captured["out"]  # (h * w, C', h, w)
    ys, xs = torch.arange(h * w) // w, torch.arange(h * w) % w
    values = out[torch.arange(h * w), :, ys, xs]  # (h * w, C'): copy b at its position
    (grad,) = torch.autograd.grad((values.sum(1) if channel is None else values[:, channel]).sum(), x)
    support = {}
    for b in range(h * w):
        support[(int(ys[b]), int(xs[b]))] = {tuple(p) for p in grad[b].abs().sum(0).nonzero().tolist()}
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


# -- along the graph of a traced model ---------------------------------------------------------------------------------


def traced(model: nn.Module, image_shape: tuple[int, int, int]) -> nn.Module:
    graph_model, graph = trace_model(model, image_shape)
    assert graph.method == "fx", graph.reason
    return graph_model


@pytest.mark.parametrize("pool", [nn.MaxPool2d, nn.AvgPool2d])
def test_a_traced_chain_has_the_fields_of_the_chain(pool):
    model = chain(pool)
    graph_model = traced(model, (1, 20, 20))
    for layer in ("input", "0", "1", "2", "3", "4"):
        assert receptive_field(graph_model, layer, (1, 20, 20)) == receptive_field(model, layer, (1, 20, 20))


def test_seed_cnn_traced_as_a_run_loads_it():
    # its layers are whole containers (conv1 = conv + ReLU): composed from the modules they hold
    model = traced(SeedCNN(), (1, 28, 28))
    assert receptive_field(model, "conv1", (1, 28, 28)) == ReceptiveField((3, 3), (1, 1), (0, 0))
    assert receptive_field(model, "conv2", (1, 28, 28)) == ReceptiveField((5, 5), (1, 1), (0, 0))
    assert receptive_field(model, "pool", (1, 28, 28)) == ReceptiveField((6, 6), (2, 2), (0, 0))
    for dense in ("fc1", "fc2", "out"):
        field = receptive_field(model, dense, (1, 28, 28))
        assert field.whole_image and "Flatten" in field.reason


def test_functional_pooling_is_followed_in_the_graph():
    model = traced(FunctionalPool(), (1, 16, 16))
    # conv1 3x3; F.max_pool2d(2): 3 + 1 = 4 pixels, stride 2; conv2 3x3: 4 + 2 * 2 = 8
    assert receptive_field(model, "conv2", (1, 16, 16)) == ReceptiveField((8, 8), (2, 2), (0, 0))


def test_small_resnet_blocks_are_the_union_of_their_paths():
    from tests.models import SmallResNet

    model = traced(SmallResNet(), (3, 32, 32))

    def field(layer):
        return receptive_field(model, layer, (3, 32, 32))

    # stem: 3x3, padding 1
    assert field("stem.0") == ReceptiveField((3, 3), (1, 1), (-1, -1))
    # block1, identity shortcut: the main path's two 3x3 convs (3 + 2 + 2 = 7, offset -1 - 1 - 1 = -3) cover the
    # shortcut's stem field (3, offset -1): the union is the main path's
    assert field("block1.conv2") == ReceptiveField((7, 7), (1, 1), (-3, -3))
    assert field("block1.add") == field("block1.relu_1") == ReceptiveField((7, 7), (1, 1), (-3, -3))
    # block2, from block1's (7, stride 1, offset -3):
    #   main: conv1 3x3 stride 2 pad 1: 7 + 2 * 1 = 9, offset -3 - 1 = -4, stride 2;
    #         conv2 3x3 pad 1: 9 + 2 * 2 = 13, offset -4 - 1 * 2 = -6
    #   shortcut: 1x1 stride 2: 7 pixels, offset -3, stride 2
    #   union: from min(-6, -3) = -6 to max(-6 + 13, -3 + 7) = 7: 13 pixels, stride 2
    assert field("block2.shortcut.0") == ReceptiveField((7, 7), (2, 2), (-3, -3))
    assert field("block2.conv2") == ReceptiveField((13, 13), (2, 2), (-6, -6))
    assert field("block2.add") == field("block2.relu_1") == ReceptiveField((13, 13), (2, 2), (-6, -6))
    # block3 alike from (13, 2, -6): main 13 + 2 * 2 + 2 * 4 = 25, offset -6 - 2 - 4 = -12, stride 4; shortcut 13 at
    # -6; union 25 at -12
    assert field("block3.relu_1") == ReceptiveField((25, 25), (4, 4), (-12, -12))
    assert field("block2.relu_1").box(3, 5, (32, 32)) == (0, 4, 13, 17)  # rows 3 * 2 - 6 = 0 to 13
    pooled = field("pool")
    assert pooled.whole_image and "pools all positions into one" in pooled.reason
    assert field("fc").whole_image


def test_a_module_called_twice_in_the_graph_is_followed():
    from tests.models import ResNet18

    model = traced(ResNet18(), (3, 32, 32))
    # conv1 3x3 (3, -1); maxpool 3x3 stride 2 pad 1 (5, stride 2, -2); layer1.0: two 3x3 convs at stride 2:
    # 5 + 4 + 4 = 13, offset -2 - 2 - 2 = -6; the identity shortcut (5 at -2) lies inside
    assert receptive_field(model, "layer1.0.relu_1", (3, 32, 32)) == ReceptiveField((13, 13), (2, 2), (-6, -6))


def test_branch_net_concatenation_is_the_union_of_its_branches():
    from tests.models import BranchNet

    model = traced(BranchNet(), (3, 32, 32))
    stem = receptive_field(model, "stem", (3, 32, 32))
    assert stem == ReceptiveField((3, 3), (1, 1), (-1, -1))
    # over the stem's map, branch3 sees 3x3 and branch5 (3x3, ReLU, 3x3) 5x5: their union is 5x5 around the position;
    # over the image, the stem's 3x3 adds 1 pixel each side: 7x7
    assert receptive_field(model, "mix.branch3", (3, 32, 32)) == ReceptiveField((5, 5), (1, 1), (-2, -2))
    assert receptive_field(model, "mix.cat", (3, 32, 32)) == ReceptiveField((7, 7), (1, 1), (-3, -3))
    assert receptive_field(model, "pool", (3, 32, 32)) == ReceptiveField((8, 8), (2, 2), (-3, -3))


def test_merges_of_different_strides_and_unknown_ops_mean_the_whole_image():
    class Uneven(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fine = nn.Conv2d(1, 2, 3, padding=1)
            self.coarse = nn.Conv2d(1, 2, 2, stride=2)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            up = F.interpolate(self.coarse(x), scale_factor=2.0)
            return self.fine(x) + up.transpose(2, 3)  # an upsampled map, transposed: nothing a box follows

    model = traced(Uneven(), (1, 8, 8))
    assert receptive_field(model, "coarse", (1, 8, 8)) == ReceptiveField((2, 2), (2, 2), (0, 0))
    add = receptive_field(model, "add", (1, 8, 8))
    assert add.whole_image and "interpolate" in add.reason


def test_functional_windows_read_their_arguments():
    class Functional(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(2, 1, 3, 5))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = F.conv2d(x, self.weight, stride=(1, 2), padding=(1, 2))  # (1, 12, 12) -> (2, 12, 6)
            x = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1)  # (2, 12, 6)
            x = F.adaptive_max_pool2d(x, (6, 3))  # windows of 2x2
            return x.relu() * torch.sigmoid(x)  # element-wise

    model = traced(Functional(), (1, 12, 12))
    assert receptive_field(model, "conv2d", (1, 12, 12)) == ReceptiveField((3, 5), (1, 2), (-1, -2))
    # 3 + 2 * 1 = 5 rows at -2; 5 + 2 * 2 = 9 columns at -4
    assert receptive_field(model, "avg_pool2d", (1, 12, 12)) == ReceptiveField((5, 9), (1, 2), (-2, -4))
    # 2x2 windows: 5 + 1 = 6 rows, stride 2; 9 + 2 = 11 columns, stride 4
    assert receptive_field(model, "adaptive_max_pool2d", (1, 12, 12)) == ReceptiveField((6, 11), (2, 4), (-2, -4))
    assert receptive_field(model, "mul", (1, 12, 12)) == receptive_field(model, "adaptive_max_pool2d", (1, 12, 12))


class RandomResidual(nn.Module):
    """A small residual net of everything the graph walk composes: a strided block with a 1x1 shortcut and a dilated
    conv, a functional pool, a concatenation of 1x1 and 5x5 branches, an identity residual and a sigmoid gate."""

    def __init__(self, pool: str = "max") -> None:
        super().__init__()
        self.pool = pool
        self.stem = nn.Conv2d(1, 3, 3, padding=1)
        self.down = nn.Conv2d(3, 4, 3, stride=2, padding=1)
        self.dilated = nn.Conv2d(4, 4, 3, dilation=2, padding=2)
        self.shortcut = nn.Conv2d(3, 4, 1, stride=2)
        self.narrow = nn.Conv2d(4, 2, 1)
        self.wide = nn.Conv2d(4, 2, (5, 3), padding=(2, 1))
        self.inner = nn.Conv2d(4, 4, 3, padding=1)
        self.gate = nn.Conv2d(4, 4, 1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.stem(x))
        x = F.relu(self.dilated(F.relu(self.down(x))) + self.shortcut(x))
        if self.pool == "max":
            x = F.max_pool2d(x, 3, stride=1, padding=1)
        else:
            x = F.avg_pool2d(x, 3, stride=1, padding=1)
        x = torch.cat([self.narrow(x), self.wide(x)], dim=1)
        x = x + F.relu(self.inner(x))
        x = x * torch.sigmoid(self.gate(x))
        return self.fc(x.mean((2, 3)))


def spatial_nodes(model: nn.Module) -> list[str]:
    graph = model_graph(model)
    return [node.name for node in graph.nodes[1:] if len(node.shape) == 3]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_residual_net_fields_hold_every_pixel_the_gradient_reaches(seed):
    torch.manual_seed(seed)
    image_shape = (1, 15, 13)
    model = traced(RandomResidual("max"), image_shape).double()
    x = torch.rand((1, *image_shape), dtype=torch.float64)
    layers = spatial_nodes(model)
    assert {"add", "cat", "mul", "max_pool2d", "add_1"} <= set(layers)
    for layer in layers:
        field = receptive_field(model, layer, image_shape)
        assert not field.whole_image, (layer, field.reason)
        for (y, x_), pixels in gradient_support(model, layer, image_shape, x).items():
            assert pixels <= box_pixels(field.box(y, x_, image_shape[1:])), (layer, y, x_, field)


def test_random_residual_net_fields_are_exact_where_nothing_cancels():
    image_shape = (1, 15, 13)
    model = traced(positive(RandomResidual("avg")), image_shape).double()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(0.1)  # small enough that the sigmoid gate does not saturate (its gradient would be 0)
    for layer in spatial_nodes(model):
        field = receptive_field(model, layer, image_shape)
        # every channel: a concatenation's channels each see one branch, together the union
        for (y, x), pixels in gradient_support(model, layer, image_shape, channel=None).items():
            assert pixels == box_pixels(field.box(y, x, image_shape[1:])), (layer, y, x, field)
