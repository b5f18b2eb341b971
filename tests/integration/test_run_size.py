"""What a Run costs: its files per layer on disk (``info``), every node of its graph (``layers --all``), and the
memory budget of capture and PCA (``--memory``), which changes batch sizes but not results."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from layerscope.memory import MemoryBudget
from layerscope.projections.compute import compute_pca
from layerscope.run import Run
from tests.conftest import cli, make_image_folder, one_line_error

RESNET = [
    "--model",
    "tests.models:SmallResNet",
    "--model-arg",
    "in_channels=3",
    "--model-arg",
    "num_classes=4",
    "--model-arg",
    "image_size=16",
]
FAST = ["--epochs", "2", "--batch-size", "16", "--device", "cpu"]


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("data") / "shapes", n=96, size=16, channels=3, classes=4)


@pytest.fixture(scope="module")
def resnet_run(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "resnet"
    capsys = pytest.MonkeyPatch()  # module fixtures cannot use capsys; the output is checked in the tests
    try:
        argv, sys.argv = sys.argv, ["layerscope", "train", *RESNET, "--dataset", str(shapes), "--out", str(out)]
        sys.argv += [*FAST, "--memory", "100MB"]
        from layerscope.cli import main

        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code in (0, None)
    finally:
        sys.argv = argv
        capsys.undo()
    return Run(out, trust_model_code=True)  # the test's own model class


def test_memory_is_recorded_with_the_batch_it_gave(resnet_run):
    capture = resnet_run.manifest["capture"]
    assert capture["memory_budget"] == 100_000_000
    assert 1 <= capture["batch_size"] <= 256
    metas = resnet_run.manifest["projections"]
    assert {meta["pca"]["batch_size"] for meta in metas.values()} and all(
        1 <= meta["pca"]["batch_size"] <= 1024 for meta in metas.values()
    )


def test_info_says_what_each_layer_stores_and_its_size_on_disk(resnet_run, capsys):
    code, out, err = cli(capsys, "info", resnet_run.path, "--json")
    assert code == 0, err
    data = json.loads(out)
    layers = {layer["name"]: layer for layer in data["layers"]}
    root = resnet_run.path
    on_disk = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    assert data["total_bytes"] == on_disk
    conv = layers["block1.relu_1"]
    assert conv["kind"] == "conv"
    assert {
        "activations/block1.relu_1.mean.npy",
        "activations/block1.relu_1.max.npy",
        "features/block1.relu_1.pca.npy",
        "projections/block1.relu_1/pca.npy",
        "topk/block1.relu_1.values.npy",
        "topk/block1.relu_1.positions.npy",
    } <= set(conv["files"])
    assert set(layers["fc"]["files"]) >= {"activations/fc.npy", "projections/fc/pca.npy", "topk/fc.values.npy"}
    assert "images.npy" in layers["input"]["files"]
    for layer in layers.values():
        assert layer["bytes"] == sum(layer["files"].values())
        for relpath, size in layer["files"].items():
            assert size == resnet_run.file(relpath).stat().st_size
    # the rest are the Run's own files, each counted once
    assert {"weights.safetensors", "manifest.json", "labels.npy", "probs.npy"} <= set(data["other_files"])
    assert sum(layer["bytes"] for layer in layers.values()) + sum(data["other_files"].values()) == on_disk

    code, text, err = cli(capsys, "info", resnet_run.path, "--files")
    assert code == 0, err
    assert "on disk" in text and "On disk" in text
    listed = [line.split() for line in text.splitlines()]
    size = resnet_run.file("activations/block1.relu_1.mean.npy").stat().st_size
    assert ["activations/block1.relu_1.mean.npy", f"{size / 1000:.1f}", "kB"] in listed


def test_layers_all_lists_every_node_of_the_graph_and_marks_the_captured(resnet_run, capsys):
    graph = resnet_run.graph
    captured = set(resnet_run.layer_names)
    assert graph.method == "fx" and len(graph.nodes) > len(captured)
    code, out, err = cli(capsys, "layers", resnet_run.path, "--all")
    assert code == 0, err
    lines = out.splitlines()
    for node in graph.nodes:
        line = next(line for line in lines if line[2:].split()[:1] == [node.name])
        assert line.startswith("* " if node.name in captured else "  "), line
        assert node.op in line
    assert "block1.add" in out and "block1.add" not in captured  # the residual add, before the block's ReLU
    assert f"{len(graph.nodes)} nodes (traced with torch.fx)" in out

    code, out, err = cli(capsys, "layers", resnet_run.path, "--all", "--json")
    data = json.loads(out)
    assert data["method"] == "fx"
    nodes = {node["name"]: node for node in data["nodes"]}
    assert list(nodes) == graph.names
    assert nodes["block1.add"]["captured"] is False and nodes["block1.add"]["op"] == "add"
    assert len(nodes["block1.add"]["inputs"]) == 2
    assert nodes["fc"]["captured"] is True and nodes["fc"]["shape"] == [4]


def test_a_small_memory_budget_gives_the_same_pca_as_a_large_one(resnet_run, tmp_path):
    layers = ["input", "stem.0", "block1.relu_1", "block3.relu_1", "fc"]
    results = {}
    for name, budget in (("small", MemoryBudget(1_000_000)), ("large", MemoryBudget(4 * 1024**3))):
        copy = tmp_path / name
        shutil.copytree(resnet_run.path, copy)
        run = Run(copy, trust_model_code=True)
        results[name] = compute_pca(run, [n for n in layers if n in run.layer_names], memory=budget)
    for layer, large in results["large"].items():
        small = results["small"][layer]
        assert large.meta["batch_size"] > small.meta["batch_size"], layer
        scale = np.abs(large.embedding).max()
        np.testing.assert_allclose(small.embedding, large.embedding, atol=1e-3 * scale, err_msg=layer)
        assert small.meta["explained_variance_ratio"] == pytest.approx(large.meta["explained_variance_ratio"], 1e-4)
    assert results["large"]["stem.0"].meta["rows_in_memory"] and not results["small"]["stem.0"].meta["rows_in_memory"]


@pytest.mark.parametrize("args", [["--memory", "lots"], ["--memory", "1MB"]])
def test_memory_that_is_not_an_amount_is_one_line(shapes, tmp_path, capsys, args):
    line = one_line_error(capsys, "train", *RESNET, "--dataset", shapes, "--out", tmp_path / "run", *FAST, *args)
    assert "--memory" in line
    assert not (tmp_path / "run").exists()


def test_a_killed_train_leaves_no_staging_directory(shapes, tmp_path):
    out = tmp_path / "runs" / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-m", "layerscope.cli", "train", *RESNET, "--dataset", shapes, "--out", out]
        + ["--epochs", "50", "--batch-size", "4", "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not list(out.parent.glob(".killed.*.tmp")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert list(out.parent.glob(".killed.*.tmp")), "train never started writing"
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # interrupted: exit code 130, or (seen once on a loaded CI machine, after the message) ended by SIGINT itself
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "interrupted; nothing was left half-written." in err
    assert list(out.parent.iterdir()) == []
