"""Top-k images per unit: agreement with a brute-force sort, tie-breaking, storage in a Run."""

import shutil

import numpy as np
import pytest
import torch

import layerscope.topk as topk_module
from layerscope.capture import iter_layer_batches
from layerscope.data import load_mnist
from layerscope.errors import LayerscopeError, RunError
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.run import Run
from layerscope.topk import TopKAccumulator, TopKCollector, compute_topk, store_topk, unit_scores

LAYERS = ["conv1", "conv2", "pool", "fc1", "fc2", "out"]


def brute_force(output: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """(values, indices, positions) by a full sort: activation descending, then dataset index ascending."""
    n = len(output)
    if output.ndim == 4:  # (N, C, H, W) -> (N, C) max and its row-major argmax
        flat = output.reshape(n, output.shape[1], -1)
        scores, argmax = flat.max(2), flat.argmax(2)
    else:
        scores, argmax = output.reshape(n, -1), None
    rank = np.broadcast_to(np.arange(n), scores.T.shape)
    order = np.lexsort((rank, -scores.T))[:, :k]  # (U, k): last key is primary
    values = np.take_along_axis(scores.T, order, 1)
    positions = None
    if argmax is not None:
        at = np.take_along_axis(argmax.T, order, 1)
        positions = np.stack([at // output.shape[3], at % output.shape[3]], 2)
    return values, order, positions


@pytest.fixture(scope="module")
def pretrained_outputs():
    model, _, _ = pretrained_seed_cnn()
    dataset = load_mnist().subset(400, 100)
    ((_, outputs),) = list(iter_layer_batches(model, dataset, LAYERS, batch_size=len(dataset)))
    return model, dataset, {name: outputs[name].numpy() for name in LAYERS}


def test_agrees_with_brute_force_on_every_layer(pretrained_outputs):
    model, dataset, outputs = pretrained_outputs
    result = compute_topk(model, dataset, ["input", *LAYERS], k=9, batch_size=64)  # "input" is skipped
    assert list(result) == LAYERS
    for name in LAYERS:
        values, indices, positions = brute_force(outputs[name], 9)
        got = result[name]
        np.testing.assert_array_equal(got.indices, indices, err_msg=name)
        np.testing.assert_array_equal(got.values, values, err_msg=name)
        assert got.values.dtype == np.float32 and got.indices.dtype == np.int64
        assert (np.diff(got.values, axis=1) <= 0).all()
        if outputs[name].ndim == 4:
            assert got.positions is not None and got.positions.dtype == np.int32
            np.testing.assert_array_equal(got.positions, positions, err_msg=name)
        else:
            assert got.positions is None
    # ReLU layers have many zeros: the ties were really exercised
    assert (outputs["fc1"] == 0).mean() > 0.3


def test_unit_scores_are_the_spatial_max_and_its_position():
    output = torch.relu(torch.randn(5, 3, 4, 6))
    output[:, 1] = 0.0  # all tied: the first position wins
    output[2, 2, 1, 3] = output[2, 2, 3, 0] = 100.0
    scores, positions = unit_scores(output.contiguous(memory_format=torch.channels_last))
    np.testing.assert_array_equal(scores.numpy(), output.amax((2, 3)).numpy())
    assert positions is not None
    assert positions[0, 1].tolist() == [0, 0] and positions[2, 2].tolist() == [1, 3]
    dense, none = unit_scores(torch.ones(5, 2, 3))
    assert dense.shape == (5, 6) and none is None


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_unit_positions_are_the_first_maximum_like_numpy(memory_format):
    maps = np.random.default_rng(1).integers(0, 3, size=(64, 8, 7, 5)).astype(np.float32)  # ties everywhere
    scores, positions = unit_scores(torch.from_numpy(maps).contiguous(memory_format=memory_format))
    flat = maps.reshape(64, 8, -1).argmax(2)
    np.testing.assert_array_equal(positions.numpy(), np.stack([flat // 5, flat % 5], 2))
    np.testing.assert_array_equal(scores.numpy(), maps.max((2, 3)))


@pytest.mark.parametrize("conv", [False, True])
def test_ties_go_to_the_lower_index_in_any_batch_order(conv):
    rng = np.random.default_rng(0)
    shape = (60, 4, 3, 3) if conv else (60, 4)
    output = rng.integers(0, 3, size=shape).astype(np.float32)  # values 0, 1, 2: ties everywhere
    values, indices, positions = brute_force(output, 7)
    for batches in ([np.arange(i, min(i + 7, 60)) for i in range(0, 60, 7)], np.array_split(rng.permutation(60), 9)):
        accumulator = TopKAccumulator(7)
        for batch in batches:
            accumulator.update(batch, torch.from_numpy(output[batch]))
        got = accumulator.result()
        np.testing.assert_array_equal(got.indices, indices)
        np.testing.assert_array_equal(got.values, values)
        if conv:
            np.testing.assert_array_equal(got.positions, positions)
    assert accumulator.seen == 60


@pytest.mark.parametrize("conv", [False, True])
def test_merging_top_k_of_parts_in_any_order_gives_one_pass(conv):
    """What the Ray capture's driver does with its workers' batches: each part's own top-k, merged as they arrive."""
    rng = np.random.default_rng(1)
    shape = (90, 5, 4, 3) if conv else (90, 5)
    output = rng.integers(0, 3, size=shape).astype(np.float32)  # ties everywhere
    values, indices, positions = brute_force(output, 7)
    parts = [np.arange(i, min(i + 8, 90)) for i in range(0, 90, 8)]
    for order in (range(len(parts)), rng.permutation(len(parts)), reversed(range(len(parts)))):
        merged = TopKAccumulator(7)
        for i in order:
            part = TopKAccumulator(7)
            part.update(parts[i], torch.from_numpy(output[parts[i]]))
            merged.merge(part.result(), width=shape[3] if conv else 0, seen=len(parts[i]))
        got = merged.result()
        np.testing.assert_array_equal(got.indices, indices)
        np.testing.assert_array_equal(got.values, values)
        if conv:
            np.testing.assert_array_equal(got.positions, positions)
        assert merged.seen == 90


def test_fewer_images_than_k_and_bad_input():
    accumulator = TopKAccumulator(9)
    accumulator.update(np.array([4, 2]), torch.tensor([[1.0, 5.0], [3.0, 5.0]]))
    result = accumulator.result()
    assert result.values.tolist() == [[3.0, 1.0], [5.0, 5.0]] and result.indices.tolist() == [[2, 4], [2, 4]]
    with pytest.raises(LayerscopeError, match="batch indices"):
        accumulator.update(np.array([5]), torch.ones(2, 2))
    with pytest.raises(LayerscopeError, match="does not match"):
        accumulator.update(np.array([5]), torch.ones(1, 3))
    with pytest.raises(LayerscopeError, match="k must be from 1 to 1000"):
        TopKAccumulator(0)
    with pytest.raises(LayerscopeError, match="empty"):
        TopKAccumulator(3).result()


@pytest.fixture
def run_copy(tiny_run, tmp_path):
    """A private copy of the session's tiny Run, so changing it does not affect other tests."""
    return Run(shutil.copytree(tiny_run.path, tmp_path / "run"))


def test_new_runs_hold_topk_from_the_capture_pass(run_copy):
    run = run_copy
    meta = run.manifest["topk"]
    assert meta["k"] == 9 and meta["layers"] == LAYERS and meta["seconds"] >= 0
    assert run.computed()["topk"] == LAYERS
    # the same as a separate pass over the Run's images
    expected = compute_topk(run.load_model(), run.dataset(), run.layers, k=9, batch_size=500)
    for name in LAYERS:
        stored = run.topk(name)
        np.testing.assert_array_equal(stored.indices, expected[name].indices)
        np.testing.assert_array_equal(stored.values, expected[name].values)
        assert stored.units == run.layer(name).shape[0] and stored.k == 9
        if run.layer(name).kind == "conv":
            np.testing.assert_array_equal(stored.positions, expected[name].positions)
            assert stored.positions.shape == (stored.units, 9, 2)
            h, w = run.layer(name).shape[1:]
            assert (stored.positions[..., 0] < h).all() and (stored.positions[..., 1] < w).all()
        else:
            assert stored.positions is None


def test_store_topk_caches_and_recomputes(run_copy, monkeypatch):
    run = run_copy
    first = store_topk(run)
    np.testing.assert_array_equal(first["conv2"].indices, run.topk("conv2").indices)

    def fail(*args, **kwargs):
        raise AssertionError("recomputed")

    with monkeypatch.context() as m:
        m.setattr(topk_module, "compute_topk", fail)
        cached = store_topk(Run(run.path))  # served from the Run
    np.testing.assert_array_equal(cached["fc1"].values, first["fc1"].values)
    smaller = store_topk(run, k=4)  # another k recomputes and replaces
    assert smaller["conv1"].values.shape == (16, 4) and Run(run.path).manifest["topk"]["k"] == 4
    np.testing.assert_array_equal(smaller["fc2"].indices, first["fc2"].indices[:, :4])
    np.testing.assert_array_equal(Run(run.path).topk("pool").positions, first["pool"].positions[:, :4])


def test_missing_topk_says_how_to_compute_it(run_copy):
    run = run_copy
    run.update_manifest(lambda m: m.pop("topk"))
    with pytest.raises(RunError, match=r"layerscope topk .* --layer fc1 --unit 0"):
        run.topk("fc1")
    with pytest.raises(RunError, match="input"):
        run.topk("input")
    assert run.computed()["topk"] == []


def test_collector_feeds_every_layer_once():
    collector = TopKCollector(["input", "a", "b"], k=2)
    assert list(collector.accumulators) == ["a", "b"]
    collector(np.arange(3), {"a": torch.tensor([[1.0], [3.0], [2.0]]), "b": torch.zeros(3, 2, 2, 2)})
    result = collector.result()
    assert result["a"].indices.tolist() == [[1, 2]] and result["b"].positions.tolist() == [[[0, 0]] * 2] * 2


def test_top_image_of_a_residual_block_channel_is_framed_by_its_receptive_field():
    """SmallResNet's block2 output (block2.relu_1, F.relu after the add of the main path and the 1x1 stride-2
    shortcut): the frame drawn on a top image is the receptive field of the channel's maximum, and nothing outside
    it moves that activation."""
    from layerscope.capture import layer_outputs
    from layerscope.data.datasets import TRAIN, Dataset
    from layerscope.receptive import receptive_field
    from layerscope.tracing import trace_model
    from tests.models import SmallResNet

    torch.manual_seed(0)
    model, _ = trace_model(SmallResNet(), (3, 32, 32))
    images = np.random.default_rng(0).integers(0, 256, size=(24, 3, 32, 32), dtype=np.uint8)
    dataset = Dataset("random", images, np.zeros(24, np.int64), np.full(24, TRAIN, np.uint8), ("a",))
    layer, unit = "block2.relu_1", 5
    top = compute_topk(model, dataset, [layer], k=3, batch_size=10)[layer]
    index, (y, x) = int(top.indices[unit, 0]), (int(v) for v in top.positions[unit, 0])
    pixels = dataset.pixels(np.array([index]))  # (1, 3, 32, 32)
    channel = layer_outputs(model, pixels[0], [layer])[layer][0, unit]  # (16, 16)
    assert channel[y, x] == channel.max() and float(channel[y, x]) == pytest.approx(top.values[unit, 0], rel=1e-4)
    # the box as the command line and the page draw it: field.box at the maximum's position
    field = receptive_field(model, layer, (3, 32, 32))
    box = field.box(y, x, (32, 32))
    # 13 pixels at stride 2, from 2y - 6 (test_receptive works the union out), clipped to the image
    assert box == (max(2 * y - 6, 0), max(2 * x - 6, 0), min(2 * y + 7, 32), min(2 * x + 7, 32))
    # the activation's gradient reaches no pixel outside the box
    x_in = pixels.clone().requires_grad_(True)
    out = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, a, o: out.__setitem__("o", o))
    try:
        model(x_in)
    finally:
        handle.remove()
    (grad,) = torch.autograd.grad(out["o"][0, unit, y, x], x_in)
    reached = grad[0].abs().sum(0) > 0  # (32, 32)
    top_, left, bottom, right = box
    assert reached[top_:bottom, left:right].any()
    reached[top_:bottom, left:right] = False
    assert not reached.any()
