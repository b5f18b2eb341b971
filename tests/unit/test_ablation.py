"""Ablation on real models and real MNIST: hooks that zero or scale units, and what that does to the test set."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

import layerscope.ablation as ablation_module
from layerscope.ablation import (
    Ablation,
    _resume_chain,
    ablated,
    check_ablations,
    evaluate_ablation,
    list_ablations,
    parse_ablation,
    predict_ablated,
    remove_ablation,
    save_ablation,
)
from layerscope.capture import layer_outputs
from layerscope.data import load_mnist
from layerscope.errors import LayerNotFoundError, LayerscopeError, RunError
from layerscope.models import SeedCNN, build_model
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.run import Run
from layerscope.training import preferred_memory_format


@pytest.fixture(scope="module")
def shipped():
    """The shipped MNIST weights and 64 bundled test images, (64, 1, 28, 28) in [0, 1]."""
    model, _, _ = pretrained_seed_cnn()
    mnist = load_mnist()
    return model, mnist.pixels(mnist.indices(1)[:64])


def no_hooks(model: nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_module_declares_all():
    for name in ablation_module.__all__:
        assert hasattr(ablation_module, name), name


def test_ablation_value_label_and_dict_round_trip():
    a = Ablation("fc2", (7, 3, 7))
    assert a.units == (3, 7) and a.scale == 0.0
    assert a.label == "fc2 3, 7 × 0"
    assert Ablation("conv2", tuple(range(32)) + (40,), 0.5).label == "conv2 0–31, 40 × 0.5"
    assert Ablation.from_dict(a.to_dict()) == a
    assert Ablation.from_dict({"layer": "fc1", "units": [1], "scale": 2}) == Ablation("fc1", (1,), 2.0)
    assert parse_ablation("conv2:7,9", 2) == Ablation("conv2", (7, 9), 2.0)
    assert parse_ablation("fc2:0-3,9") == Ablation("fc2", (0, 1, 2, 3, 9))
    assert parse_ablation("features.3:1") == Ablation("features.3", (1,))
    for bad in ("fc2", "fc2:", ":3", "fc2:x", "fc2:5-2", "fc2:-1"):
        with pytest.raises(LayerscopeError) as info:
            parse_ablation(bad)
        assert "\n" not in str(info.value)
    for bad_args in (("fc2", ()), ("fc2", (1,), float("nan")), ("", (1,))):
        with pytest.raises(LayerscopeError):
            Ablation(*bad_args)  # type: ignore[arg-type]
    with pytest.raises(LayerscopeError, match="needs 'layer', 'units'"):
        Ablation.from_dict({"units": [1]})


def test_zeroing_and_scaling_a_conv_channel(shipped):
    model, x = shipped
    base = layer_outputs(model, x, ["conv2", "pool"])
    with ablated(model, [Ablation("conv2", (7,))]):
        off = layer_outputs(model, x, ["conv2", "pool"])
    assert base["conv2"][:, 7].abs().sum() > 0
    assert torch.all(off["conv2"][:, 7] == 0) and torch.all(off["pool"][:, 7] == 0)
    others = [c for c in range(32) if c != 7]
    assert torch.equal(off["conv2"][:, others], base["conv2"][:, others])
    # channels-last, as evaluate_ablation runs it; two ablations of one layer multiply (2 x 1.5 on channel 9)
    preferred_memory_format(model, (1, 28, 28))
    xl = x.contiguous(memory_format=torch.channels_last)
    with ablated(model, [Ablation("conv2", (7, 9), 2.0), Ablation("conv2", (9,), 1.5)]):
        doubled = layer_outputs(model, xl, ["conv2"])["conv2"]
    assert torch.allclose(doubled[:, 7], 2 * base["conv2"][:, 7], rtol=1e-5, atol=1e-6)
    assert torch.allclose(doubled[:, 9], 3 * base["conv2"][:, 9], rtol=1e-5, atol=1e-6)
    assert torch.allclose(doubled[:, others[:5]], base["conv2"][:, others[:5]], rtol=1e-5, atol=1e-6)
    assert no_hooks(model)


def test_scale_one_changes_nothing_and_dense_units_are_neurons(shipped):
    model, x = shipped
    plain = predict_ablated(model, x, [])
    assert np.allclose(predict_ablated(model, x, [Ablation("fc2", tuple(range(64)), 1.0)]), plain, atol=1e-6)
    with ablated(model, [Ablation("fc2", (3, 60))]):
        fc2 = layer_outputs(model, x, ["fc2"])["fc2"]
    assert torch.all(fc2[:, [3, 60]] == 0) and fc2[:, [0, 1, 2]].abs().sum() > 0
    single = predict_ablated(model, x[0], [Ablation("fc2", (3, 60))])
    assert single.shape == (10,) and np.isclose(single.sum(), 1, atol=1e-5)
    uint8 = predict_ablated(model, (x[:2] * 255).round().to(torch.uint8).numpy(), [])
    assert np.allclose(uint8, plain[:2], atol=1e-4)


def test_hooks_removed_and_mode_restored_also_on_errors(shipped):
    model, x = shipped
    model.train()
    with pytest.raises(RuntimeError, match="inside"):
        with ablated(model, [Ablation("fc1", (0,)), Ablation("conv1", (2,))]):
            assert not model.training and not no_hooks(model)
            raise RuntimeError("inside the block")
    assert model.training and no_hooks(model)
    # a unit the layer lacks is found on the first pass: one line, and nothing left behind
    with pytest.raises(LayerscopeError) as info:
        with ablated(model, [Ablation("fc2", (70,))]):
            model(x[:1])
    assert str(info.value) == "unit 70 is out of range: 'fc2' has units 0 to 63."
    assert model.training and no_hooks(model)
    with pytest.raises(LayerNotFoundError, match=r"unknown layer 'fc3'.*Hint: 'layerscope layers RUN'"):
        with ablated(model, [Ablation("fc3", (0,))]):
            pass
    assert model.training and no_hooks(model)
    model.eval()


def test_gradients_flow_through_an_ablation(shipped):
    """The hook returns a new tensor, so autograd (feature visualisation, attribution) still works."""
    model, x = shipped
    image = x[:2].clone().requires_grad_(True)
    with ablated(model, [Ablation("conv1", tuple(range(16)))]):
        model(image).sum().backward()
    assert image.grad is not None and torch.all(image.grad == 0)  # every conv1 channel off: no path to the pixels
    image.grad = None
    with ablated(model, [Ablation("conv1", (0, 1))]):
        model(image).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0


class _TupleBlock(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.linear(x)
        return y, y.detach().clone()


class _TupleNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = _TupleBlock()
        self.head = nn.Linear(3, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y, _ = self.block(x)
        return self.head(y)


def test_tuple_outputs_scale_their_first_tensor():
    torch.manual_seed(0)
    net = _TupleNet().eval()
    x = torch.randn(5, 4)
    seen = {}
    net.head.register_forward_pre_hook(lambda m, args: seen.update(y=args[0]))
    with ablated(net, [Ablation("block", (1,))]):
        net(x)
    net.head._forward_pre_hooks.clear()
    assert torch.all(seen["y"][:, 1] == 0) and torch.equal(seen["y"][:, 0], net.block.linear(x)[:, 0])


def _copy(run: Run, tmp_path) -> Run:
    shutil.copytree(run.path, tmp_path / "run")
    return Run(tmp_path / "run")


def test_zeroing_fc2_leaves_chance_and_the_figures_agree(tiny_run):
    model = tiny_run.load_model()
    result = evaluate_ablation(tiny_run, [Ablation("fc2", tuple(range(64)))], model=model)
    labels = np.asarray(tiny_run.labels)[np.asarray(tiny_run.split) == 1]
    assert result.n_images == len(labels) == 1000
    # fc2 all zero: the logits are the output layer's bias, the same class for every image
    (only,) = np.unique(result.predicted_after)
    assert result.accuracy_after == pytest.approx(np.mean(labels == only))
    assert 0.05 < result.accuracy_after < 0.2
    assert result.accuracy_before == pytest.approx(tiny_run.manifest["metrics"]["test_accuracy"], abs=1e-6)
    counts = np.bincount(labels, minlength=10)
    for confusion in (result.confusion_before, result.confusion_after):
        assert confusion.shape == (10, 10) and np.array_equal(confusion.sum(axis=1), counts)
    assert result.confusion_change.sum() == 0 and np.all(result.confusion_change.sum(axis=1) == 0)
    after = result.class_accuracy_after
    assert after[only] == 1 and np.all(np.delete(after, only) == 0)
    assert np.allclose(result.class_accuracy_before, np.diag(result.confusion_before) / counts)
    changes = result.biggest_changes(3)
    assert changes and all(p == only and a > b for _, p, b, a in changes)
    assert result.n_changed == int(np.sum(result.predicted_before != only))
    assert 0 < result.seconds < 30
    # fc2 is stored whole and only `out` follows it: the pass started there, and from the pixels it agrees
    assert result.resumed_from == "fc2"
    full = evaluate_ablation(tiny_run, result.ablations, model=model, use_stored=False)
    assert full.resumed_from is None and np.allclose(full.probs, result.probs, atol=1e-5)
    # the selected image's prediction: the result has it, and predict_ablated agrees
    index = int(result.indices[5])
    expected = predict_ablated(model, tiny_run.dataset().pixels(np.array([index]))[0], result.ablations)
    assert np.allclose(result.probs_of(index), expected, atol=1e-5)
    assert result.probs_of(0) is None  # a training image


def test_scale_one_reproduces_the_stored_probabilities(tiny_run):
    calls = []
    result = evaluate_ablation(
        tiny_run, [Ablation("conv2", tuple(range(32)), 1.0)], batch_size=300, progress=lambda *a: calls.append(a)
    )
    stored = np.asarray(tiny_run.probs)[result.indices]
    assert np.allclose(result.probs, stored, atol=1e-5)
    assert result.n_changed == 0 and not result.confusion_change.any() and result.biggest_changes() == []
    assert calls[0] == ("ablation", 0, 1000) and calls[-1] == ("ablation", 1000, 1000) and len(calls) == 5


def test_bad_ablations_are_one_line_errors(tiny_run):
    cases = {
        Ablation("fc2", (70,)): "unit 70 is out of range: 'fc2' has units 0 to 63.",
        Ablation("conv2", (32,)): "unit 32 is out of range: 'conv2' has units 0 to 31.",
        Ablation("fc3", (1,)): "unknown layer 'fc3'",
        Ablation("input", (1,)): "'input' is the input image",
    }
    for ablation, message in cases.items():
        with pytest.raises(LayerscopeError) as info:
            evaluate_ablation(tiny_run, [ablation])
        assert message in str(info.value) and "\n" not in str(info.value)
    check_ablations(tiny_run, [Ablation("out", (9,)), Ablation("pool", (31,))])


def test_save_list_remove_round_trip(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    ablations = [Ablation("fc2", (3, 7)), Ablation("conv2", (9,), 0.5)]
    result = evaluate_ablation(run, ablations)
    save_ablation(run, "two units", ablations, result)
    save_ablation(run, "bare", [Ablation("fc1", (0,))])
    reopened = Run(run.path)  # what is on disk, not the object's copy
    saved = list_ablations(reopened)
    assert [s.name for s in saved] == ["two units", "bare"]
    first = saved[0]
    assert first.ablations == tuple(ablations) and first.label == "fc2 3, 7 × 0; conv2 9 × 0.5"
    assert first.result is not None and first.result["accuracy_after"] == pytest.approx(result.accuracy_after)
    assert first.result["split"] == "test" and first.result["n_images"] == 1000
    assert len(first.result["class_accuracy_before"]) == 10 and saved[1].result is None
    save_ablation(reopened, "bare", [Ablation("fc1", (1,))])  # the same name replaces
    assert [s.ablations[0].units for s in list_ablations(Run(run.path))] == [(3, 7), (1,)]
    remove_ablation(reopened, "two units")
    assert [s.name for s in list_ablations(Run(run.path))] == ["bare"]
    with pytest.raises(LayerscopeError, match=r"^no saved ablation 'nope' in .*; it has 'bare'\.$"):
        remove_ablation(reopened, "nope")
    with pytest.raises(LayerscopeError, match="other ablations"):
        save_ablation(reopened, "wrong", [Ablation("fc1", (0,))], result)
    with pytest.raises(LayerscopeError, match="out of range"):
        save_ablation(reopened, "bad", [Ablation("fc1", (64,))])
    with pytest.raises(LayerscopeError, match="name"):
        save_ablation(reopened, " ", ablations)
    assert Run(run.path).manifest["metrics"] == tiny_run.manifest["metrics"]  # the rest of the manifest is kept


def test_a_run_without_a_model_is_refused(tiny_run, tmp_path):
    run = _copy(tiny_run, tmp_path)
    run.update_manifest(lambda m: m.update(model=None))
    with pytest.raises(RunError, match="has no model .* ablation re-runs the model"):
        evaluate_ablation(run, [Ablation("fc2", (1,))])


class _Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.head = nn.Linear(4, 4), nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.a(x.flatten(1))
        return self.head(self.b(h) + h)  # a skip connection around b


class _Functional(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.head = nn.Linear(4, 4), nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.a(x.flatten(1))))


def test_resuming_from_a_layer_needs_a_plain_chain_after_it():
    cnn = SeedCNN().eval()
    chain = _resume_chain(cnn, (1, 28, 28), "fc1", [])
    assert chain is not None and chain[0] == (64,) and chain[1] == [cnn.fc2, cnn.out]
    assert _resume_chain(cnn, (1, 28, 28), "out", [])[1] == []  # type: ignore[index]
    assert _resume_chain(cnn, (1, 28, 28), "fc2.0", [])[1] == [cnn.fc2[1], cnn.out]  # type: ignore[index]
    assert _resume_chain(cnn, (1, 28, 28), "fc2", ["fc1"]) is None  # another ablated layer runs before it
    assert _resume_chain(_Residual().eval(), (1, 2, 2), "a", []) is None
    assert _resume_chain(_Residual().eval(), (1, 2, 2), "b", []) is None
    assert _resume_chain(_Functional().eval(), (1, 2, 2), "a", []) is None
    assert _resume_chain(_Functional().eval(), (1, 2, 2), "head", []) is not None


def test_another_models_activations_are_not_resumed_from(tiny_run):
    other = build_model(tiny_run.manifest["model"]).eval()  # untrained: the stored fc2 is not its fc2
    result = evaluate_ablation(tiny_run, [Ablation("fc2", (1,))], model=other)
    assert result.resumed_from is None
    assert evaluate_ablation(tiny_run, [Ablation("conv2", (1,))]).resumed_from is None  # conv maps are not stored


def test_in_place_only_where_safe(shipped):
    model, x = shipped
    with ablated(model, [Ablation("conv2", (7,), 0.5)]), torch.inference_mode():
        expected = model(x)
    with ablated(model, [Ablation("conv2", (7,), 0.5)], in_place=True), torch.inference_mode():
        assert torch.equal(model(x), expected)
    # an Identity's output is its input: scaling it in place would change the caller's tensor
    net = nn.Sequential(nn.Identity(), nn.Linear(4, 2)).eval()
    with torch.inference_mode():
        inp = torch.ones(3, 4)
        with ablated(net, [Ablation("0", (1,))], in_place=True):
            net(inp)
        assert torch.all(inp == 1)
    # outside inference mode the hook makes a new tensor, so gradients still flow
    image = x[:1].clone().requires_grad_(True)
    with ablated(model, [Ablation("conv1", (0,))], in_place=True):
        model(image).sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert no_hooks(model)
