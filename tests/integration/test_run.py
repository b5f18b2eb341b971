"""A real Run: the report's CNN trained with --preset tiny on the bundled MNIST (see conftest.tiny_run)."""

import json

import numpy as np
import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from layerscope.capture import iter_layer_batches
from layerscope.data import load_mnist
from layerscope.errors import LayerNotFoundError, RunError
from layerscope.pipeline import train_run
from layerscope.projections import compute_projection
from layerscope.projections.compute import layer_features
from layerscope.run import FORMAT_VERSION, Run
from layerscope.training import TrainConfig

LAYERS = ["input", "conv1", "conv2", "pool", "fc1", "fc2", "out"]


def test_run_directory_contents(tiny_run):
    run = Run(tiny_run.path)
    m = run.manifest
    assert m["format_version"] == FORMAT_VERSION
    assert run.layer_names == LAYERS
    assert m["dataset"]["n_train"] == 3000 and m["dataset"]["n_test"] == 1000
    assert m["dataset"]["source"] == "bundled:mnist"
    assert m["model"]["class"] == "layerscope.models.seed_cnn:SeedCNN"
    assert len(m["history"]) == 3 and set(m["history"][0]) >= {"train_loss", "test_accuracy", "seconds"}
    assert 0.5 < m["metrics"]["test_accuracy"] <= 1.0
    assert (run.path / "weights.safetensors").is_file()
    assert run.images.shape == (4000, 1, 28, 28) and run.labels.shape == (4000,)
    assert run.probs.shape == (4000, 10)
    np.testing.assert_allclose(run.probs.sum(1), 1.0, rtol=1e-5)
    assert run.activations("fc1").shape == (4000, 64) and run.activations("out").shape == (4000, 10)
    assert run.channel_summary("conv2", "max").shape == (4000, 32)
    assert not list(run.path.parent.glob(".tiny.*"))  # no temporary directory left behind


def test_stored_values_match_the_model(tiny_run):
    run = Run(tiny_run.path)
    model = run.load_model()
    idx = np.array([0, 17, 3500])
    ((_, out),) = list(iter_layer_batches(model, run.dataset(), ["conv1", "fc2"], idx, stop_early=False))
    np.testing.assert_allclose(run.activations("fc2")[idx], out["fc2"].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(run.channel_summary("conv1", "mean")[idx], out["conv1"].mean((2, 3)).numpy(), atol=1e-6)
    probs = torch.softmax(out["__logits__"], 1).numpy()
    np.testing.assert_allclose(run.probs[idx], probs, rtol=1e-5, atol=1e-6)
    # the stored probabilities give the stored test accuracy
    test = run.split[:] == 1
    accuracy = (run.probs[test].argmax(1) == run.labels[test]).mean()
    assert accuracy == pytest.approx(run.manifest["metrics"]["test_accuracy"], abs=1e-6)


@pytest.mark.parametrize("layer", LAYERS)
def test_pca_of_every_layer_agrees_with_scikit_learn(tiny_run, layer):
    run = Run(tiny_run.path)
    ours = np.asarray(run.projection(layer, "pca"))
    features = layer_features(run, layer, np.arange(len(run.labels)))
    solver = "arpack" if features.shape[1] > 2000 else "full"
    ref = SkPCA(2, svd_solver=solver, random_state=0).fit_transform(features.astype(np.float64))
    ours = ours * np.sign((ours * ref).sum(0))
    np.testing.assert_allclose(ours, ref, atol=2e-3 * np.abs(ref).max())
    meta = run.projection_meta(layer, "pca")
    assert 0 <= meta["knn_accuracy"] <= 1 and 0 <= meta["trustworthiness"] <= 1


def test_layers_separate_classes_better_than_pixels(tiny_run):
    run = Run(tiny_run.path)
    pixels = run.projection_meta("input", "pca")["knn_accuracy"]
    fc2 = run.projection_meta("fc2", "pca")["knn_accuracy"]
    assert fc2 > pixels + 0.1


@pytest.mark.parametrize("method", ["tsne", "umap", "lda", "isomap"])
def test_other_methods_are_computed_stored_and_cached(tiny_run, method):
    run = Run(tiny_run.path)
    result = compute_projection(run, "fc2", method, random_state=0)
    assert result.embedding.shape == (4000, 2) and np.isfinite(result.embedding).all()
    # every method separates the digits of fc2 better than its 2-D PCA does
    assert result.meta["knn_accuracy"] > run.projection_meta("fc2", "pca")["knn_accuracy"]
    assert result.meta["input"] == "activations"
    stored = Run(run.path)
    np.testing.assert_array_equal(stored.projection("fc2", method), result.embedding)
    assert stored.projection_meta("fc2", method)["computed"] == result.meta["computed"]
    again = compute_projection(stored, "fc2", method)
    assert again.meta["computed"] == result.meta["computed"]  # served from the Run, not recomputed


def test_conv_layers_feed_nonlinear_methods_through_pca(tiny_run):
    run = Run(tiny_run.path)
    result = compute_projection(run, "conv2", "lda")
    assert result.meta["input"] == "pca50"
    assert run.features("conv2").shape == (4000, 50)


def test_unknown_layer_and_method(tiny_run):
    run = Run(tiny_run.path)
    with pytest.raises(LayerNotFoundError, match="unknown layer 'fc3'.*layerscope layers"):
        compute_projection(run, "fc3", "pca")
    with pytest.raises(Exception, match="unknown projection method 'pcaa'"):
        compute_projection(run, "fc1", "pcaa")


def test_newer_format_is_refused(tmp_path, tiny_run):
    manifest = json.loads((tiny_run.path / "manifest.json").read_text())
    manifest["format_version"] = FORMAT_VERSION + 1
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunError, match="written by a newer layerscope"):
        Run(tmp_path)


@pytest.mark.parametrize("text, message", [("{", "is not valid JSON"), ('{"format_version": 1}', "lacks dataset")])
def test_malformed_manifest(tmp_path, text, message):
    (tmp_path / "manifest.json").write_text(text)
    with pytest.raises(RunError, match=message):
        Run(tmp_path)


def test_failed_training_leaves_no_run_and_keeps_the_old_one(tmp_path, monkeypatch):
    import layerscope.pipeline as pipeline

    out = tmp_path / "run"
    out.mkdir()
    (out / "manifest.json").write_text('{"keep": true}')

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(pipeline, "capture_dataset", broken)
    config = TrainConfig(epochs=1, train_limit=200, test_limit=100, device="cpu")
    with pytest.raises(RuntimeError, match="disk full"):
        train_run(out, load_mnist(), config, force=True)
    assert (out / "manifest.json").read_text() == '{"keep": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    with pytest.raises(RuntimeError, match="disk full"):
        train_run(tmp_path / "new", load_mnist(), config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]


def test_existing_run_is_not_replaced_without_force(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with pytest.raises(RunError, match="already exists; pass --force"):
        train_run(out, load_mnist(), TrainConfig(epochs=1, train_limit=100, test_limit=50, device="cpu"))
