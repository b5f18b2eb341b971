"""The residual, branching and transformer test models of ``tests/models.py``: logits of the right shape on RGB 32x32
and grey 28x28 images, traceable by torch.fx with the same outputs, ResNet18 named and sized as torchvision's, and
TinyViT's attention maps reachable by a forward hook."""

import pytest
import torch

from tests.models import BranchNet, ResNet18, SmallResNet, TinyViT
from tests.torchvision_resnet import resnet18

NEW_MODELS = [ResNet18, SmallResNet, BranchNet, TinyViT]
SHAPES = [(3, 32), (1, 28)]  # (channels, side)


def _build(cls, channels: int, side: int, num_classes: int = 10) -> torch.nn.Module:
    torch.manual_seed(0)
    return cls(in_channels=channels, num_classes=num_classes, image_size=side).eval()


@pytest.mark.parametrize("channels, side", SHAPES)
@pytest.mark.parametrize("cls", NEW_MODELS, ids=lambda cls: cls.__name__)
def test_logits_and_fx_trace(cls, channels, side):
    model = _build(cls, channels, side, num_classes=7)
    x = torch.rand(3, channels, side, side)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        out = model(x)
        out_traced = traced(x)
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()
    assert (out_traced - out).abs().max().item() <= 1e-6


def _conv(cin: int, cout: int, k: int) -> int:
    return cin * cout * k * k  # bias=False throughout torchvision's ResNet


def _bn(c: int) -> int:
    return 2 * c  # weight and bias (running stats are buffers)


def _resnet18_params(stem: int, num_classes: int) -> int:
    total = stem + _bn(64)
    cin = 64
    for cout in (64, 128, 256, 512):  # layer1..layer4, two BasicBlocks each
        stride = 1 if cout == 64 else 2
        total += _conv(cin, cout, 3) + _bn(cout) + _conv(cout, cout, 3) + _bn(cout)  # block 0
        if stride != 1 or cin != cout:
            total += _conv(cin, cout, 1) + _bn(cout)  # block 0's downsample
        total += 2 * (_conv(cout, cout, 3) + _bn(cout))  # block 1
        cin = cout
    return total + 512 * num_classes + num_classes  # fc


def test_resnet18_is_torchvisions_with_a_small_stem():
    assert _resnet18_params(_conv(3, 64, 7), 1000) == 11_689_512  # the count torchvision publishes for resnet18
    for channels, side in SHAPES:
        model = _build(ResNet18, channels, side)
        keys = list(model.state_dict())
        assert keys == list(resnet18(num_classes=10).state_dict())  # torchvision's names, in torchvision's order
        assert keys[0] == "conv1.weight" and keys[-1] == "fc.bias"
        assert {"layer1.0.conv1.weight", "layer2.0.downsample.0.weight", "layer4.1.bn2.running_var"} <= set(keys)
        assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and model.conv1.padding == (1, 1)
        assert model.conv1.bias is None
        assert sum(p.numel() for p in model.parameters()) == _resnet18_params(_conv(channels, 64, 3), 10)


def test_small_resnet_and_branchnet_layout():
    small = SmallResNet(width=8)
    assert [name for name, _ in small.named_children()] == ["stem", "block1", "block2", "block3", "pool", "fc"]
    assert len(small.block1.shortcut) == 0  # identity: the shape stays
    assert small.block2.shortcut[0].stride == (2, 2) and small.block3.shortcut[0].out_channels == 32
    branch = BranchNet()
    assert [name for name, _ in branch.named_children()] == ["stem", "mix", "pool", "gap", "fc"]


def test_tinyvit_attention_maps_reach_a_hook():
    model = _build(TinyViT, 1, 28)
    maps = []
    handle = model.get_submodule("blocks.2.attn.softmax").register_forward_hook(lambda m, i, o: maps.append(o))
    with torch.no_grad():
        model(torch.rand(2, 1, 28, 28))
    handle.remove()
    (attn,) = maps
    assert attn.shape == (2, 4, 50, 50)  # (N, heads, 7 x 7 patches + CLS, same)
    torch.testing.assert_close(attn.sum(-1), torch.ones(2, 4, 50))
    with pytest.raises(ValueError, match="divisible by patch"):
        TinyViT(image_size=30, patch=4)
