"""A layer's recorded output is what it computed, also where a later in-place op (``ReLU(inplace=True)``,
``out += identity``, as in torchvision's ResNets) overwrites that tensor in the same forward pass."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from layerscope.capture import ActivationRecorder, layer_outputs


class _Block(nn.Module):
    """A residual block written as torchvision writes them: in-place ReLU after bn1, ``out += identity`` after bn2."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.shortcut = nn.Conv2d(1, 4, 1)
        self.head = nn.Linear(4 * 8 * 8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = self.shortcut(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        out = self.relu(out)
        return self.head(out.flatten(1))


@pytest.fixture(scope="module")
def block() -> _Block:
    torch.manual_seed(0)
    model = _Block().eval()
    for bn in (model.bn1, model.bn2):  # running statistics that make a good share of the outputs negative
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 1.5)
    return model


def _true_outputs(model: _Block, x: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        bn1 = model.bn1(model.conv1(x))
        bn2 = model.bn2(model.conv2(torch.relu(bn1)))
    return {"bn1": bn1, "bn2": bn2}


@pytest.mark.parametrize("stop_early", [True, False])
def test_recorded_outputs_are_the_layers_own_before_later_in_place_ops(block, stop_early):
    x = torch.rand(5, 1, 8, 8)
    truth = _true_outputs(block, x)
    assert (truth["bn1"] < 0).float().mean() > 0.2  # what an in-place ReLU would have zeroed
    with ActivationRecorder(block, ["conv1", "bn1", "bn2"]) as rec, torch.inference_mode():
        recorded = rec.run(x, stop_early=stop_early)
        again = rec.run(x, stop_early=stop_early)
    for name in ("bn1", "bn2"):
        torch.testing.assert_close(recorded[name], truth[name], rtol=0, atol=1e-6)
        torch.testing.assert_close(again[name], truth[name], rtol=0, atol=1e-6)
    # only what a later op overwrites is copied: bn2's output is added to in place only past the last layer asked
    assert rec._overwritten == ({"bn1"} if stop_early else {"bn1", "bn2"})


def test_on_demand_outputs_agree_with_the_recorded_ones(block):
    x = torch.rand(3, 1, 8, 8)
    truth = _true_outputs(block, x)
    outputs = layer_outputs(block, x, ["bn1", "bn2", "relu"])
    torch.testing.assert_close(outputs["bn1"], truth["bn1"], rtol=0, atol=1e-6)
    torch.testing.assert_close(outputs["bn2"], truth["bn2"], rtol=0, atol=1e-6)
    assert (outputs["relu"] >= 0).all()


def test_a_graph_kept_for_differentiation_still_reaches_the_input(block):
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    with ActivationRecorder(block, ["bn1"], keep_graph=True) as rec:
        recorded = rec.run(x, stop_early=False)  # the in-place ReLU runs after bn1
    torch.testing.assert_close(recorded["bn1"].detach(), _true_outputs(block, x.detach())["bn1"], rtol=0, atol=1e-6)
    (grad,) = torch.autograd.grad(recorded["bn1"].sum(), x)
    assert grad.abs().sum() > 0
