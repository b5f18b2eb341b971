"""The model's graph (torch.fx tracing): nodes and edges against the models' code, the default layers, and node
outputs against direct forward passes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from layerscope.capture import describe_layers, layer_outputs, list_layers
from layerscope.errors import RunError
from layerscope.graph import ModelGraph, chain_graph
from layerscope.manifest import check_manifest
from layerscope.models.seed_cnn import SeedCNN
from layerscope.tracing import model_graph, source_model, trace_model
from tests.models import BranchNet, LeNetBN, ResNet18, SmallResNet, TinyViT

RGB = (3, 32, 32)


def traced(model: nn.Module, shape=RGB):
    torch.manual_seed(0)
    gm, graph = trace_model(model.eval(), shape)
    assert graph.method == "fx", graph.reason
    return gm, graph


def test_small_resnet_adds_read_the_block_and_its_shortcut():
    gm, graph = traced(SmallResNet())
    adds = [node for node in graph.nodes if node.op == "add"]
    assert [a.name for a in adds] == ["block1.add", "block2.add", "block3.add"]
    assert all(a.merge and len(a.inputs) == 2 for a in adds)
    # block1's shortcut is an empty nn.Sequential(): the add reads the block's input (the stem's ReLU) itself
    assert graph.node("block1.add").inputs == ("stem.2", "block1.bn2")  # shortcut(x) + out
    # a 1x1 conv shortcut where the shape changes
    assert set(graph.node("block2.add").inputs) == {"block2.bn2", "block2.shortcut.1"}
    assert graph.node("block2.shortcut.0").inputs == ("block1.relu_1",)
    assert ("stem.2", "block1.add") in graph.skip_edges()
    assert graph.blocks == ["block1", "block2", "block3"]
    assert list_layers(gm) == ["stem.0", "block1.relu_1", "block2.relu_1", "block3.relu_1", "pool", "fc"]
    assert graph.node("flatten").kind == "function" and graph.node("fc").inputs == ("flatten",)


def test_block_outputs_equal_a_direct_forward_pass():
    model = SmallResNet().eval()
    gm, _ = traced(model)
    x = torch.rand(4, *RGB)
    got = layer_outputs(gm, x, ["block1.relu_1", "block2.add", "block3.relu_1"])
    with torch.no_grad():
        b1 = model.block1(model.stem(x))
        b2 = model.block2(b1)
        b3 = model.block3(b2)
        main = model.block2.bn2(model.block2.conv2(torch.relu(model.block2.bn1(model.block2.conv1(b1)))))
        add2 = main + model.block2.shortcut(b1)
    torch.testing.assert_close(got["block1.relu_1"], b1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["block2.add"], add2, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["block3.relu_1"], b3, atol=1e-5, rtol=1e-5)


def test_torchvision_resnet18_graph():
    model = ResNet18(num_classes=10).eval()
    gm, graph = traced(model)
    adds = [node for node in graph.nodes if node.op in ("add", "iadd")]
    assert len(adds) == 8 and all(len(a.inputs) == 2 for a in adds)
    assert set(graph.node("layer2.0.add").inputs) == {"layer2.0.bn2", "layer2.0.downsample.1"}
    assert set(graph.node("layer1.1.add").inputs) == {"layer1.1.bn2", "layer1.0.relu_1"}  # identity shortcut
    # the block's ReLU runs twice: its second call (after the add) is a node of its own
    assert graph.node("layer1.0.relu_1").inputs == ("layer1.0.add",) and graph.node("layer1.0.relu_1").op == "ReLU"
    blocks = [f"layer{i}.{j}" for i in range(1, 5) for j in range(2)]
    assert graph.blocks == blocks
    assert list_layers(gm) == ["conv1", "maxpool", *(f"{b}.relu_1" for b in blocks), "avgpool", "fc"]
    x = torch.rand(2, *RGB)
    got = layer_outputs(gm, x, ["layer1.0.relu_1", "layer3.1.relu_1"])
    with torch.no_grad():
        h = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        l1 = model.layer1[0](h)
        l3 = model.layer3(model.layer2(model.layer1(h)))
    torch.testing.assert_close(got["layer1.0.relu_1"], l1, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["layer3.1.relu_1"], l3, atol=1e-5, rtol=1e-5)
    # a hook on the first call of the shared ReLU records that call only, not the one after the add
    inner = layer_outputs(gm, x, ["layer1.0.relu"])["layer1.0.relu"]
    with torch.no_grad():
        expected = torch.relu(model.layer1[0].bn1(model.layer1[0].conv1(h)))
    torch.testing.assert_close(inner, expected, atol=1e-5, rtol=1e-5)
    # the graph model's weights are the model's
    assert source_model(gm) is model and set(gm.state_dict()) <= set(model.state_dict())


def test_concatenation_of_two_branches():
    gm, graph = traced(BranchNet())
    cat = graph.node("mix.cat")
    assert cat.merge and cat.inputs == ("mix.branch3", "mix.branch5.2") and cat.shape == (32, 32, 32)
    assert graph.blocks == ["mix"] and graph.block_output("mix") == "mix.relu"
    assert "mix.relu" in list_layers(gm)
    x = torch.rand(2, *RGB)
    model = source_model(gm)
    with torch.no_grad():
        s = model.stem(x)
        s = torch.relu(s) if graph.node("relu").inputs == ("stem",) else s
        expected = torch.cat([model.mix.branch3(s), model.mix.branch5(s)], 1)
    torch.testing.assert_close(layer_outputs(gm, x, ["mix.cat"])["mix.cat"], expected, atol=1e-5, rtol=1e-5)


def test_vit_blocks_and_the_class_token():
    model = TinyViT().eval()
    gm, graph = traced(model)
    assert graph.blocks == [f"blocks.{i}" for i in range(4)]
    assert list_layers(gm) == ["patch_embed", *(f"blocks.{i}.add_1" for i in range(4)), "head"]
    # the class token is a parameter expanded to the batch's size: it reads no pixels, so it is no node of the graph
    assert not any(node.op == "expand" for node in graph.nodes)
    x = torch.rand(2, *RGB)
    with torch.no_grad():
        tokens = model.patch_embed(x).flatten(2).transpose(1, 2)
        tokens = torch.cat([model.cls_token.expand(2, -1, -1), tokens], 1) + model.pos_embed
        expected = model.blocks[1](model.blocks[0](tokens))
    got = layer_outputs(gm, x, ["blocks.1.add_1"])
    # recorded as the patch tokens on their 8x8 grid, embedding channels first, and the class token beside it
    grid = expected[:, 1:].transpose(1, 2).reshape(2, 32, 8, 8)
    torch.testing.assert_close(got["blocks.1.add_1"], grid, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["blocks.1.add_1#cls"], expected[:, 0], atol=1e-5, rtol=1e-5)
    assert grid[1, 5, 2, 3] == expected[1, 1 + 2 * 8 + 3, 5]  # channel 5 of the token at row 2, column 3


def test_named_layers_stay_whole_and_a_chain_keeps_its_layers():
    gm, graph = traced(SeedCNN(), (1, 28, 28))
    assert graph.names == ["input", "conv1", "conv2", "pool", "fc1", "fc2", "out"]
    assert list_layers(gm) == ["conv1", "conv2", "pool", "fc1", "fc2", "out"] and not graph.blocks
    gm, graph = traced(LeNetBN(), (1, 28, 28))
    assert list_layers(gm) == ["conv1", "bn1", "conv2", "bn2", "fc1", "bn3", "fc2"]
    assert graph.node("max_pool2d").inputs == ("relu",) and graph.node("conv2").inputs == ("max_pool2d",)
    infos = describe_layers(gm, (1, 28, 28), num_classes=10)
    assert {i.name: i.op for i in infos}["bn3"] == "BatchNorm1d"


def test_include_chooses_any_node():
    gm, _ = traced(SmallResNet())
    assert list_layers(gm, include=["block*.add"]) == ["block1.add", "block2.add", "block3.add"]
    assert list_layers(gm, include=["fc", "block2.*"]) == ["block2.relu_1", "fc"]  # among the defaults first


class Branchy(nn.Module):
    """Python control flow on a tensor's value: symbolic tracing cannot follow it."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3)
        self.fc = nn.Linear(4 * 26 * 26, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv(x)
        if h.mean() > 100:
            h = h * 0
        return self.fc(h.flatten(1))


def test_a_model_fx_cannot_follow_falls_back_to_its_modules():
    model = Branchy()
    gm, graph = trace_model(model, (1, 28, 28))
    assert gm is model and graph.method == "hooks" and "torch.fx could not trace" in graph.reason
    assert model_graph(gm) is None and list_layers(gm) == ["conv", "fc"]


def test_shown_folds_groups_and_keeps_edges_between_them():
    _, graph = traced(SmallResNet())
    nodes, edges = graph.shown(["block1", "block2"])
    assert "block1" in nodes and "block1.conv1" not in nodes and "block3.add" in nodes
    assert ("stem.2", "block1") in edges and ("block1", "block2") in edges and ("block2", "block3.conv1") in edges
    assert all(src != dst for src, dst in edges)
    # the graph round-trips through the manifest
    assert ModelGraph.from_dict(graph.to_dict()) == graph


def test_manifest_refuses_a_graph_whose_edges_point_forward(tmp_path):
    _, graph = traced(SmallResNet())
    chain = chain_graph([])
    assert chain.nodes == ()
    record = graph.to_dict()
    record["nodes"][1]["inputs"] = ["fc"]
    manifest = {
        "format_version": 1,
        "dataset": {"n_images": 2, "class_names": ["a", "b"], "image_shape": [3, 32, 32]},
        "model": None,
        "layers": [{"name": "input", "kind": "image", "shape": [3, 32, 32]}],
        "metrics": {"test_accuracy": 0.5},
        "graph": record,
    }
    with pytest.raises(RunError, match=r"graph.nodes\[1\].inputs\[0\].*not a node before it"):
        check_manifest(manifest, "m.json")


def test_weights_are_drawn_only_between_a_node_and_what_it_reads():
    from layerscope.network import connections

    gm, _ = traced(BranchNet())
    layers = describe_layers(gm, RGB, ["stem", "mix.branch3", "mix.branch5.0", "mix.branch5.2", "fc"], 10)
    kinds = {c.dst: (c.kind, c.note) for c in connections(gm, layers)}
    assert kinds["mix.branch3"][0] == "conv"  # through the stem's functional ReLU
    # run right after branch3, branch5.0 reads the stem's ReLU, not branch3: no weights between them
    assert (
        kinds["mix.branch5.0"][0] == "none" and "does not compute from 'mix.branch3' alone" in kinds["mix.branch5.0"][1]
    )
    assert kinds["mix.branch5.2"][0] == "conv"


def test_the_unit_card_and_default_layer_never_open_on_a_batch_norm(tmp_path):
    from layerscope.dashboard.inside import default_unit
    from layerscope.dashboard.state import DashboardState
    from layerscope.data import load_dataset
    from layerscope.layers import last_hidden_layer
    from layerscope.pipeline import train_run
    from layerscope.training import TrainConfig
    from tests.conftest import make_image_folder

    data = load_dataset(make_image_folder(tmp_path / "shapes", n=24, size=16, channels=3, classes=4))
    spec = {"class": "tests.models:LeNetBN", "args": {"in_channels": 3, "num_classes": 4, "image_size": 16}}
    run = train_run(tmp_path / "run", data, TrainConfig(epochs=1, batch_size=8, device="cpu"), spec=spec)
    assert [info.op for info in run.layers[1:4]] == ["Conv2d", "BatchNorm2d", "Conv2d"]
    assert default_unit(DashboardState(run)) == {"layer": "conv2", "unit": 0}  # not bn1
    assert last_hidden_layer(run.layers, 4) == "fc1"  # not bn3


def test_a_manifest_without_a_dataset_name_opens_its_dataset(tmp_path):
    # found by tests/fuzz/test_fuzz_run.py: "dataset.name" is optional in a manifest, and Run.dataset() needed it
    import json
    import shutil

    from layerscope.data import load_idx_dir
    from layerscope.pipeline import create_run
    from layerscope.run import Run
    from tests.conftest import make_idx_dir

    data = load_idx_dir(make_idx_dir(tmp_path / "toy"))
    run = create_run(
        tmp_path / "run",
        data,
        SeedCNN(image_size=8, num_classes=3),
        {"class": "layerscope.models.seed_cnn:SeedCNN", "args": {"image_size": 8, "num_classes": 3}},
        device="cpu",
    )
    copy = Path(shutil.copytree(run.path, tmp_path / "copy"))
    manifest = json.loads((copy / "manifest.json").read_text())
    del manifest["dataset"]["name"]
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert Run(copy).dataset().name == "copy"


class _Paused(nn.Module):
    """A block whose forward, while fx traces it, waits until the test has run another model in another thread."""

    def __init__(self, tracing, resume) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.tracing, self.resume = tracing, resume

    def forward(self, x):
        if isinstance(x, torch.fx.Proxy):
            self.tracing.set()
            assert self.resume.wait(60), "the other thread never finished its forward pass"
        return self.conv(x) + x.mean(1, keepdim=True)


def test_a_graph_model_runs_while_another_thread_traces():
    """fx patches every module call of the process while it traces; the dashboard runs forward passes in one thread
    while it loads (traces) a model in another, and the forward passes must compute what they always do."""
    import threading

    model = SmallResNet().eval()
    gm, _ = traced(model)
    x = torch.rand(2, *RGB)
    with torch.no_grad():
        expected = model(x)
    tracing, resume = threading.Event(), threading.Event()
    other = nn.Sequential(_Paused(tracing, resume), nn.Flatten(), nn.Linear(4 * 32 * 32, 3))
    result = {}

    def trace_other():
        result["graph"] = trace_model(other, RGB)[1]

    thread = threading.Thread(target=trace_other)
    thread.start()
    try:
        assert tracing.wait(60), "the other model's trace never reached its block"
        with torch.no_grad():
            got = gm(x)  # fx's patches are in place now
        assert layer_outputs(gm, x, ["block2.add"])["block2.add"].shape == (2, 16, 16, 16)
    finally:
        resume.set()
        thread.join(60)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    assert result["graph"].method == "fx", result["graph"].reason
    assert "0.add" in result["graph"]  # the paused block traced as usual
