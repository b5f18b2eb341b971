"""The weights that ship with layerscope, and Runs made from a trained model without training."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import layerscope.pipeline as pipeline
from layerscope.cache import demo_run_dir
from layerscope.data import load_mnist
from layerscope.models.pretrained import WEIGHTS_DIR, pretrained_seed_cnn
from layerscope.pipeline import create_run, demo_run
from layerscope.run import Run
from tests.conftest import cli, one_line_error


def test_shipped_weights_are_recorded_and_accurate(tmp_path):
    model, spec, provenance = pretrained_seed_cnn()
    assert provenance["command"].startswith("layerscope train")
    assert provenance["training"]["seed"] == 0 and provenance["test_accuracy"] >= 0.99
    weights = (WEIGHTS_DIR / "seed_cnn_mnist.safetensors").read_bytes()
    assert hashlib.sha256(weights).hexdigest() == provenance["sha256"]
    run = create_run(tmp_path / "r", load_mnist().subset(500, 2000), model, spec, device="cpu", provenance=provenance)
    m = Run(run.path).manifest
    assert m["provenance"]["sha256"] == provenance["sha256"]
    assert m["history"] == []
    assert m["metrics"]["test_accuracy"] >= 0.98
    assert set(m["projections"]) == {"input", "conv1", "conv2", "pool", "fc1", "fc2", "out"}
    predicted = np.asarray(run.probs).argmax(1)
    test = np.asarray(run.split) == 1
    assert m["metrics"]["test_accuracy"] == pytest.approx((predicted[test] == run.labels[test]).mean())


def test_demo_run_is_made_once_then_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline, "load_mnist", lambda: load_mnist().subset(300, 300))
    monkeypatch.setenv("LAYERSCOPE_CACHE", str(tmp_path))
    first = demo_run(device="cpu")
    assert first.path.parent == tmp_path and first.path.name.startswith("mnist-seed-cnn-")
    created = json.loads((first.path / "manifest.json").read_text())["created"]
    second = demo_run(device="cpu")
    assert second.path == first.path and second.manifest["created"] == created


def test_demo_is_a_run_name_on_the_command_line(tmp_path, monkeypatch, capsys):
    """`layerscope info demo` finds (and first prepares) the demo's Run in the cache; `demo --prepare` prints where
    it is without serving; a directory called demo in the current directory is taken as given."""
    monkeypatch.setattr(pipeline, "load_mnist", lambda: load_mnist().subset(300, 300))
    monkeypatch.setenv("LAYERSCOPE_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    code, out, err = cli(capsys, "info", "demo", "--json")
    assert code == 0, err
    assert "preparing the demo's Run at" in " ".join(err.split())
    assert Path(json.loads(out)["path"]) == demo_run_dir() and demo_run_dir().parent == tmp_path / "cache"
    code, out, err = cli(capsys, "demo", "--prepare", "--device", "cpu")
    assert code == 0, err
    assert str(demo_run_dir()) in out.replace("\n", "")  # the console may wrap a long path
    assert "preparing" not in err and "dashboard" not in out  # made already; nothing served
    (tmp_path / "demo").mkdir()
    line = one_line_error(capsys, "info", "demo")
    assert "demo" in line and "cache" not in line
