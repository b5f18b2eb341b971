"""Models that are graphs, not chains, as a user runs them: train (or import-model) -> capture -> PCA and LDA ->
top-k -> feature visualisation, for the residual, branching and transformer test models of ``tests.models``.

Each model is trained for one epoch on 160 generated 32x32 colour images (4 classes of bars; ResNet18 on them
shrunk to 16x16 by --image-size), so what is checked is what tracing and capture promise, not accuracy: the Run's
graph has the model's nodes and edges (every add and concatenation reads both of its inputs), the default layers are
the stem, each block's output and the head, and a block output's stored activations are what the untraced model
computes when its submodules are called by hand.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from layerscope.capture import ActivationRecorder
from layerscope.featurevis import cached_featurevis
from layerscope.run import Run
from layerscope.tracing import source_model
from tests.conftest import cli

CLASSES = {"red": (230, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230), "yellow": (230, 210, 40)}
PER_CLASS = 40
SIZE = 32
FV_STEPS = 8  # feature visualisation: enough to check the pipeline, not to make a good image
MODEL_ARGS = ["--model-arg", "in_channels=3", "--model-arg", f"num_classes={len(CLASSES)}"]
FAST = ["--epochs", "1", "--batch-size", "16", "--seed", "0", "--device", "cpu"]
TRUST = ["--trust-model-code", "--device", "cpu"]  # the test's own model classes


@pytest.fixture(scope="module")
def bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR/<colour>/<i>.png: 32x32 RGB noise around grey with one 4-pixel bar of the class's colour, vertical for red
    and blue, horizontal for green and yellow, at a random place."""
    rng = np.random.default_rng(0)
    directory = tmp_path_factory.mktemp("data") / "bars"
    for c, (name, colour) in enumerate(CLASSES.items()):
        folder = directory / name
        folder.mkdir(parents=True)
        for i in range(PER_CLASS):
            image = rng.normal(60, 25, size=(SIZE, SIZE, 3))
            at = int(rng.integers(4, SIZE - 8))
            if c % 2 == 0:
                image[:, at : at + 4] = colour
            else:
                image[at : at + 4, :] = colour
            image += rng.normal(0, 15, size=image.shape)
            Image.fromarray(np.clip(image, 0, 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return directory


def ok(capsys: pytest.CaptureFixture[str], *args: object) -> str:
    code, out, err = cli(capsys, *args)
    assert code == 0, err
    return out


@pytest.fixture(scope="module")
def trained(bars: Path, tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Run]:
    """``trained(capsys, "SmallResNet")``: the model trained once per module by ``layerscope train`` on ``bars``."""
    runs: dict[str, Run] = {}

    def train(capsys: pytest.CaptureFixture[str], model: str) -> Run:
        if model not in runs:
            out = tmp_path_factory.mktemp("runs") / model
            args = ("--model", f"tests.models:{model}", *MODEL_ARGS, *EXPECTED[model].train_args)
            ok(capsys, "train", *args, "--dataset", bars, "--out", out, *FAST)
            runs[model] = Run(out, trust_model_code=True)
        return runs[model]

    return train


# -- what each model's Run must hold ---------------------------------------------------------------------------------


def _small_resnet_block2(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.block2(m.block1(m.stem(x)))


def _resnet18_layer2_0(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.layer2[0](m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))


def _branchnet_mix(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.mix(F.relu(m.stem(x)))


def _tinyvit_block1(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    tokens = m.patch_embed(x).flatten(2).transpose(1, 2)  # (N, 64, dim)
    tokens = torch.cat([m.cls_token.expand(len(x), -1, -1), tokens], dim=1) + m.pos_embed  # (N, 65, dim)
    return m.blocks[1](m.blocks[0](tokens))


@dataclass(frozen=True)
class Expected:
    layers: list[str]  # run.layer_names: the default choice
    merges: dict[str, set[str]]  # every add / concatenation of the graph -> the nodes it reads
    edges: list[tuple[str, str]]  # a few more edges the graph must have
    block_output: str  # a node whose stored activations are checked against ``direct``
    direct: Callable[[nn.Module, torch.Tensor], torch.Tensor]  # that node's output from the untraced model
    size: int = SIZE  # of the images the model is trained on
    train_args: tuple[str, ...] = ()


def _resnet18_layers() -> list[str]:
    blocks = [f"layer{i}.{j}.relu_1" for i in range(1, 5) for j in range(2)]
    return ["input", "conv1", "maxpool", *blocks, "avgpool", "fc"]


def _resnet18_merges() -> dict[str, set[str]]:
    merges = {}
    for i in range(1, 5):
        before = "maxpool" if i == 1 else f"layer{i - 1}.1.relu_1"
        shortcut = before if i == 1 else f"layer{i}.0.downsample.1"
        merges[f"layer{i}.0.add"] = {f"layer{i}.0.bn2", shortcut}
        merges[f"layer{i}.1.add"] = {f"layer{i}.1.bn2", f"layer{i}.0.relu_1"}
    return merges


def _tinyvit_merges() -> dict[str, set[str]]:
    merges = {}
    for i in range(4):
        before = "add" if i == 0 else f"blocks.{i - 1}.add_1"  # the top level's add: tokens + pos_embed
        merges[f"blocks.{i}.add"] = {before, f"blocks.{i}.attn.proj"}
        merges[f"blocks.{i}.add_1"] = {f"blocks.{i}.add", f"blocks.{i}.mlp.2"}
        attn = f"blocks.{i}.attn"
        merges[f"{attn}.matmul"] = {f"{attn}.getitem", f"{attn}.transpose"}  # q @ k^T
        merges[f"{attn}.matmul_1"] = {f"{attn}.softmax", f"{attn}.getitem_2"}  # attention @ v
    return merges


EXPECTED = {
    "SmallResNet": Expected(
        layers=["input", "stem.0", "block1.relu_1", "block2.relu_1", "block3.relu_1", "pool", "fc"],
        merges={
            "block1.add": {"stem.2", "block1.bn2"},  # the identity shortcut reads the stem
            "block2.add": {"block2.shortcut.1", "block2.bn2"},  # 1x1 conv + BN shortcuts
            "block3.add": {"block3.shortcut.1", "block3.bn2"},
        },
        edges=[
            ("block1.relu_1", "block2.conv1"),
            ("block1.relu_1", "block2.shortcut.0"),
            ("block2.add", "block2.relu_1"),
            ("block3.relu_1", "pool"),
            ("pool", "flatten"),
            ("flatten", "fc"),
        ],
        block_output="block2.relu_1",
        direct=_small_resnet_block2,
    ),
    "ResNet18": Expected(
        layers=_resnet18_layers(),
        merges=_resnet18_merges(),
        edges=[
            ("layer1.1.relu_1", "layer2.0.conv1"),
            ("layer1.1.relu_1", "layer2.0.downsample.0"),
            ("layer2.0.add", "layer2.0.relu_1"),
            ("layer4.1.relu_1", "avgpool"),
            ("flatten", "fc"),
        ],
        block_output="layer2.0.relu_1",
        direct=_resnet18_layer2_0,
        # the bars shrunk to 16 x 16 (a quarter of the work; the adaptive pool takes any size): at 32 x 32 its
        # 64 x 32 x 32 first layer alone made the test twice as slow
        size=16,
        train_args=("--image-size", "16"),
    ),
    "BranchNet": Expected(
        layers=["input", "stem", "mix.relu", "pool", "gap", "fc"],
        merges={"mix.cat": {"mix.branch3", "mix.branch5.2"}},
        edges=[
            ("stem", "relu"),  # forward's F.relu, outside the block
            ("relu", "mix.branch3"),  # both branches read the same input
            ("relu", "mix.branch5.0"),
            ("mix.branch5.0", "mix.branch5.1"),
            ("mix.branch5.1", "mix.branch5.2"),
            ("mix.cat", "mix.relu"),
            ("mix.relu", "pool"),
        ],
        block_output="mix.relu",
        direct=_branchnet_mix,
    ),
    "TinyViT": Expected(
        layers=["input", "patch_embed", *(f"blocks.{i}.add_1" for i in range(4)), "head"],
        merges=_tinyvit_merges(),
        edges=[
            ("blocks.0.add", "blocks.0.norm2"),
            ("blocks.0.attn.qkv", "blocks.0.attn.reshape"),
            ("blocks.3.add_1", "norm"),
            ("norm", "getitem"),  # x[:, 0]: the CLS token
            ("getitem", "head"),
        ],
        block_output="blocks.1.add_1",
        direct=_tinyvit_block1,
    ),
}


def _check_graph(run: Run, graph_model: nn.Module, expected: Expected) -> None:
    graph = run.graph  # as the manifest records it
    assert graph.method == "fx", graph.reason
    # every module the model calls is a node of its own name (an empty Sequential, SmallResNet's identity
    # shortcut, is no call)
    leaves = {
        name
        for name, module in source_model(graph_model).named_modules()
        if name and not list(module.children()) and not isinstance(module, nn.Sequential)
    }
    assert leaves <= set(graph.names), sorted(leaves - set(graph.names))
    merges = {node.name: set(node.inputs) for node in graph.nodes if node.merge}
    assert merges == expected.merges
    assert all(len(graph.node(name).inputs) == 2 for name in merges)
    edges = set(graph.edges)
    assert {(src, dst) for dst, inputs in expected.merges.items() for src in inputs} <= edges
    assert set(expected.edges) <= edges, sorted(set(expected.edges) - edges)
    # the recorded graph is the one the Run's graph model computes
    assert [n.name for n in graph.nodes] == graph_model.layerscope_graph.names


def _check_block_output(run: Run, graph_model: nn.Module, expected: Expected) -> None:
    """The stored values of ``expected.block_output`` for 8 images are the untraced model's, to 1e-5."""
    model = source_model(graph_model)
    assert type(model).__name__ == run.manifest["model"]["class"].rpartition(":")[2]
    index = np.arange(0, run.n_images, run.n_images // 8)[:8]
    with torch.no_grad():
        out = expected.direct(model.eval(), run.dataset().pixels(index))
    name = expected.block_output
    info = run.layer(name)
    assert run.graph.node(name).shape == tuple(out.shape[1:])
    if info.tokens is not None:  # TinyViT's (65 tokens, 32): 32 channels over the 8x8 patch tokens, and the class token
        assert info.kind == "conv" and info.shape == (32, 8, 8) and info.tokens == 1
        patches = out[:, 1:]
        stats = (("mean", patches.mean(1)), ("max", patches.amax(1)), ("cls", out[:, 0]))
    else:  # stored as each channel's spatial mean and max
        assert info.kind == "conv"
        stats = (("mean", out.mean((2, 3))), ("max", out.amax((2, 3))))
    for stat, value in stats:
        np.testing.assert_allclose(run.channel_summary(name, stat)[index], value.numpy(), rtol=1e-5, atol=1e-5)


def _check_pipeline(
    capsys: pytest.CaptureFixture[str], run: Run, graph_model: nn.Module, layer: str, tmp_path: Path
) -> None:
    """PCA and LDA of ``layer``, top-k of every layer, and a stored feature visualisation of its last unit.

    LDA is the second method: as fast as Isomap here (seconds), and it needs no connected neighbourhood graph, which
    160 images of 4 well-separated classes need not give Isomap (scikit-learn then warns, an error under pytest)."""
    n = run.n_images
    for method in ("pca", "lda"):
        out = ok(capsys, "project", run.path, "--layer", layer, "--method", method, *TRUST)
        # a token layer says what it is projected from
        source = " (from its class token)" if run.layer(layer).tokens else ""
        assert f"{method} of {layer}{source}: {n} points" in out
    fresh = Run(run.path, trust_model_code=True)
    for method in ("pca", "lda"):
        embedding = fresh.projection(layer, method)
        assert embedding.shape == (n, 2) and np.isfinite(embedding).all()
    # top-k: stored by train / import-model for every layer; the command reads them back
    top = json.loads(ok(capsys, "topk", run.path, "--unit", f"{layer}:0", "--json", *TRUST))
    assert top["layer"] == layer and len(top["images"]) == 9
    for info in fresh.layers[1:]:
        units = info.shape[0] if info.kind == "conv" else info.dims
        indices = fresh.topk(info.name).indices
        assert indices.shape == (units, 9) and ((0 <= indices) & (indices < n)).all(), info.name
    assert [image["index"] for image in top["images"]] == fresh.topk(layer).indices[0].tolist()
    # feature visualisation of the layer's last unit (TinyViT's: embedding channel 31 over the patch tokens): naive,
    # regularised and the unit's top image accentuated, kept in the Run
    info = fresh.layer(layer)
    unit = (info.shape[0] if info.kind == "conv" else info.dims) - 1
    png = tmp_path / "fv.png"
    args = ("--unit", f"{layer}:{unit}", "--out", png, "--steps", FV_STEPS, "--store")
    ok(capsys, "featurevis", run.path, *args, *TRUST)
    with Image.open(png) as image:
        assert image.mode == "RGB" and image.width > image.height > 0
    fv = cached_featurevis(fresh, layer, unit, steps=FV_STEPS)
    assert fv is not None, "featurevis --store kept nothing"
    shape = tuple(run.manifest["dataset"]["image_shape"])
    assert fv.images.shape == (1, *shape) and fv.naive.shape == shape and fv.accent is not None
    for image in (fv.images, fv.naive, fv.accent):
        assert np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1
    assert fv.trust["accent_from"] == int(fresh.topk(layer).indices[unit, 0])
    # the activation it reports is the unit's as the Run and its top-k count units: a conv channel's (or a token
    # layer's embedding channel's) spatial max, an element of the flattened output otherwise
    with ActivationRecorder(graph_model, [layer]) as recorder, torch.no_grad():
        value = recorder.run(torch.from_numpy(np.stack([fv.images[0], fv.accent])))[layer]
    reached = value[:, unit].amax((1, 2)) if info.kind == "conv" else value.flatten(1)[:, unit]
    np.testing.assert_allclose(reached.numpy(), [fv.activation[0], fv.trust["accent_activation"]], rtol=1e-4, atol=1e-4)
    assert fv.trust["accent_activation"] >= fv.trust["accent_start_activation"]


@pytest.mark.parametrize("model", list(EXPECTED))
def test_graph_model_from_training_to_feature_visualisation(trained, model, capsys, tmp_path):
    run = trained(capsys, model)
    expected = EXPECTED[model]
    assert run.layer_names == expected.layers
    assert run.manifest["dataset"]["image_shape"] == [3, expected.size, expected.size]
    graph_model = run.load_model()  # once: tracing ResNet18 again takes seconds
    _check_graph(run, graph_model, expected)
    _check_block_output(run, graph_model, expected)
    _check_pipeline(capsys, run, graph_model, expected.block_output, tmp_path)


def test_import_model_with_include_captures_nodes_that_are_not_default(trained, bars, capsys, tmp_path):
    """SmallResNet's trained weights imported with ``--include 'block*.add'``: the residual adds before their ReLU,
    functional nodes no module of the model computes, are the Run's layers, with the values the untraced model's
    blocks compute, and go through the same projections, top-k and feature visualisation."""
    source = trained(capsys, "SmallResNet")
    out = tmp_path / "adds"
    weights = source.path / "weights.safetensors"
    model_args = ("--model", "tests.models:SmallResNet", *MODEL_ARGS, "--weights", weights)
    ok(capsys, "import-model", *model_args, "--include", "block*.add", "--dataset", bars, "--out", out, *TRUST[1:])
    run = Run(out, trust_model_code=True)
    assert run.layer_names == ["input", "block1.add", "block2.add", "block3.add"]
    assert run.manifest["model"]["layer_patterns"]["include"] == ["block*.add"]
    assert run.manifest["history"] == [] and run.manifest["provenance"]["imported_from"].endswith(weights.name)
    assert run.graph.names == source.graph.names  # the whole graph, whatever was captured
    np.testing.assert_allclose(run.probs[:], source.probs[:], atol=1e-6)
    graph_model = run.load_model()
    model = source_model(graph_model).eval()
    index = np.arange(0, run.n_images, 20)
    with torch.no_grad():
        x = model.stem(run.dataset().pixels(index))
        for i in (1, 2, 3):
            block = getattr(model, f"block{i}")
            added = block.shortcut(x) + block.bn2(block.conv2(F.relu(block.bn1(block.conv1(x)))))
            assert run.layer(f"block{i}.add").shape == tuple(added.shape[1:])
            for stat, value in (("mean", added.mean((2, 3))), ("max", added.amax((2, 3)))):
                stored = run.channel_summary(f"block{i}.add", stat)[index]
                np.testing.assert_allclose(stored, value.numpy(), rtol=1e-5, atol=1e-5)
            assert added.min() < 0  # before the ReLU: not the block's output
            x = block(x)
    _check_pipeline(capsys, run, graph_model, "block2.add", tmp_path)
