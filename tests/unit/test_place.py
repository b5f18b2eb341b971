"""Placing new inputs into stored projections: the Run's own rows land where the stored embedding has them, and new
digits land among digits of their class. A real Run: the shipped weights over 1,200 MNIST images."""

import shutil
import time

import numpy as np
import pytest
import torch

from layerscope.capture import layer_outputs
from layerscope.data import load_mnist
from layerscope.errors import LayerscopeError
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.pipeline import create_run
from layerscope.projections.compute import compute_projection
from layerscope.projections.place import Placement, check_placement, fit_placement
from layerscope.run import Run

N_TRAIN, N_TEST, N_NEW = 900, 300, 150
# fc2 (64 units) feeds the methods raw; the input (784 pixels) feeds them its 50 PCA scores, as wide layers do
CASES = [
    ("fc2", "pca"),
    ("fc2", "lda"),
    ("fc2", "isomap"),
    ("fc2", "tsne"),
    ("fc2", "umap"),
    ("input", "pca"),
    ("input", "lda"),
]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model, spec, provenance = pretrained_seed_cnn()
    data = load_mnist().subset(N_TRAIN, N_TEST)
    run = create_run(
        tmp_path_factory.mktemp("place") / "r", data, model, spec, device="cpu", pca_kinds=("image", "dense")
    )
    for layer, method in CASES:
        if method != "pca":
            compute_projection(run, layer, method)
    return Run(run.path)


@pytest.fixture(scope="module")
def new_digits(run):
    """MNIST test images the Run does not hold: (pixels (n, 784) in [0, 1], fc2 (n, 64), labels)."""
    mnist = load_mnist()
    test = mnist.indices(1)[N_TEST : N_TEST + N_NEW]
    x = torch.from_numpy(mnist.images[test].astype(np.float32) / 255.0)
    outputs = layer_outputs(run.load_model("cpu"), x, ["input", "fc2"])
    return {name: v.reshape(len(test), -1).numpy() for name, v in outputs.items()}, np.asarray(mnist.labels[test])


def own_values(run, layer, rows):
    """(n, D) the layer's full activations of the Run's own images."""
    if layer == "input":
        return run.images[rows].reshape(len(rows), -1).astype(np.float32) / 255.0
    return np.asarray(run.activations(layer)[rows], np.float32)


def majority_labels(embedding, labels, points, k=10):
    """The most common label among each point's k nearest stored points."""
    d = ((points[:, None, :] - embedding[None, :, :]) ** 2).sum(-1)
    nearest = np.argsort(d, axis=1)[:, :k]
    return np.array([np.bincount(labels[row], minlength=10).argmax() for row in nearest])


@pytest.mark.parametrize("layer, method", CASES)
def test_own_rows_land_on_their_stored_positions_and_new_digits_among_their_class(run, new_digits, layer, method):
    placement = fit_placement(run, layer, method)
    embedding = np.asarray(run.projection(layer, method))
    labels = np.asarray(run.labels)
    spread = np.sqrt(embedding.var(0).sum())
    assert placement.spread_ == pytest.approx(spread, rel=1e-4)
    assert placement.input_ == ("pca50" if layer == "input" and method != "pca" else "activations")
    assert placement.disagreement_ <= placement.max_disagreement

    rows = np.random.default_rng(3).choice(len(labels), 80, replace=False)
    placed = placement.transform(own_values(run, layer, rows))
    assert placed.shape == (80, 2) and placed.dtype == np.float32
    distance = np.linalg.norm(placed - embedding[rows], axis=1) / spread
    if method in ("pca", "lda", "isomap"):  # the stored map itself, or a deterministic refit of it
        assert distance.max() < 1e-3, distance.max()
    else:  # an optimisation against the fixed embedding: close, not exact
        assert np.median(distance) < 0.03 and np.mean(distance < 0.1) >= 0.9, np.sort(distance)[-10:]

    values, new_labels = new_digits
    new = placement.transform(values[layer])
    agree = np.mean(majority_labels(embedding, labels, new) == new_labels)
    # chance is ~10%; the raw pixels' projections separate digits far less than fc2's (measured: 0.41-0.48 there,
    # 0.77-0.99 in fc2's)
    assert agree >= (0.25 if layer == "input" else 0.6), agree


def test_one_input_gives_one_point(run):
    placement = fit_placement(run, "fc2", "lda")
    one = np.asarray(run.activations("fc2")[5])
    assert placement.transform(one).shape == (1, 2)
    np.testing.assert_allclose(placement.transform(one)[0], run.projection("fc2", "lda")[5], atol=1e-4)


def test_what_cannot_be_placed_says_what_to_do(run, tmp_path):
    with pytest.raises(LayerscopeError, match="placeable: pca, lda"):
        check_placement(run, "fc2", "file")
    with pytest.raises(LayerscopeError, match=r"no umap projection of 'fc1'.*layerscope project .* --method umap"):
        check_placement(run, "fc1", "umap")
    with pytest.raises(LayerscopeError, match="unknown layer"):
        check_placement(run, "fc9", "pca")

    copy = Run(shutil.copytree(run.path, tmp_path / "copy"))
    copy.file("features/input.pca_components.npy").unlink()
    with pytest.raises(LayerscopeError, match=r"no fitted PCA map of 'input'.*--method pca --recompute"):
        fit_placement(copy, "input", "lda")
    # a projection that does not belong to the Run's inputs (rows shuffled) is refused, not placed wrongly
    path = copy.file("projections/fc2/lda.npy")
    shuffled = np.load(path)[np.random.default_rng(0).permutation(N_TRAIN + N_TEST)]
    np.save(path, shuffled)
    with pytest.raises(LayerscopeError, match=r"computed from other inputs.*--method lda --recompute"):
        Placement("lda").fit(Run(copy.path), "fc2")


def test_progress_goes_from_start_to_end(run):
    seen = []
    fit_placement(run, "fc2", "lda", progress=lambda task, done, total: seen.append((done, total)))
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_dashboard_places_the_drawing_once_the_background_fit_is_ready(run):
    from layerscope.dashboard.state import LIVE, DashboardState

    state = DashboardState(run)
    assert state.placements.place(LIVE, "fc2", "lda") is None  # nothing drawn
    digit = run.images[7, 0].astype(np.float32) / 255.0  # the Run's own image 7, drawn
    state.set_drawing(LIVE, digit)
    assert state.placements.place(LIVE, "fc2", "pca") is not None  # the stored PCA map: at once
    first = state.placements.place(LIVE, "fc2", "lda")  # starts the rebuild in the background
    deadline = time.monotonic() + 60
    while (job := state.placements.job("fc2", "lda")) is not None and not job.finished and time.monotonic() < deadline:
        text = state.placements.placing("fc2", "lda")  # "" once it finished since the loop's test
        assert text == "" or text.startswith("preparing to place drawings in the LDA of fc2… "), text
        time.sleep(0.05)
    assert job is not None and job.finished and job.error is None
    where = state.placements.place(LIVE, "fc2", "lda")
    assert first is None or first == where
    assert where is not None and state.placements.placing("fc2", "lda") == ""
    np.testing.assert_allclose(where, run.projection("fc2", "lda")[7], atol=1e-3)
    assert state.placements.place(LIVE, "fc2", "file") is None and "cannot be placed" in state.placements.placing(
        "fc2", "file"
    )
    # the page polls while a job is unfinished or unshown: one no panel shows (fc2's LDA) stops counting
    later = state.sessions.get("f" * 32)  # a page opened after the job finished has nothing to wait for
    assert later.seen(job)
    state.placements.shown([("fc2", "lda"), ("input", "pca")])
    assert not state.scratch.seen(job)  # the scratch outside a request: it started the job and has not shown it
    state.placements.shown([("fc2", "pca"), ("input", "pca")])
    assert state.scratch.seen(job)
