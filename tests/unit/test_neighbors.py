"""Nearest-neighbour graphs (projections/neighbors.py) and how t-SNE and UMAP use them: exact search against
scikit-learn's, NN-descent's recall, the stratified sample, the graph the Run stores once and shares, and the fit on a
sample with the other images placed by transform. A real Run: the shipped weights over 1,200 MNIST images."""

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from layerscope.data import load_mnist
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.pipeline import create_run
from layerscope.projections import compute
from layerscope.projections.compute import compute_pca, compute_projection, layer_neighbors
from layerscope.projections.neighbors import ExactIndex, exact_neighbors, knn_graph, stratified_sample
from layerscope.projections.tsne import TSNE
from layerscope.projections.umap import UMAP
from layerscope.run import Run


def test_exact_search_finds_what_scikit_learn_finds():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=(700, 12)).astype(np.float32)
    queries = rng.normal(size=(130, 12)).astype(np.float32)
    indices, distances = exact_neighbors(queries, reference, 7)
    want_d, want_i = NearestNeighbors(algorithm="brute").fit(reference).kneighbors(queries, n_neighbors=7)
    np.testing.assert_array_equal(indices, want_i)
    np.testing.assert_allclose(distances, want_d, rtol=1e-4, atol=1e-4)
    assert indices.dtype == np.int32 and distances.dtype == np.float32


def test_a_graph_leaves_each_point_out_and_blocks_do_not_change_it(monkeypatch):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(500, 8)).astype(np.float32)
    graph = knn_graph(x, 10, method="exact")
    assert graph.indices.shape == (500, 10) and graph.meta["method"] == "exact"
    assert not (graph.indices == np.arange(500)[:, None]).any()
    want_d, want_i = NearestNeighbors(algorithm="brute").fit(x).kneighbors(x, n_neighbors=11)
    np.testing.assert_array_equal(graph.indices, want_i[:, 1:])
    np.testing.assert_allclose(graph.distances, want_d[:, 1:], rtol=1e-4, atol=1e-4)
    monkeypatch.setattr("layerscope.projections.neighbors.BLOCK_BYTES", 4 * 500 * 16)  # 16-row blocks
    np.testing.assert_array_equal(knn_graph(x, 10, method="exact").indices, graph.indices)
    # umap-learn's form: each point first, at distance 0
    with_self, d_self = graph.with_self(5)
    np.testing.assert_array_equal(with_self[:, 0], np.arange(500))
    np.testing.assert_array_equal(with_self[:, 1:], graph.indices[:, :4])
    assert (d_self[:, 0] == 0).all()


def test_nn_descent_finds_nearly_every_exact_neighbour():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1500, 10)).astype(np.float32)
    exact = knn_graph(x, 15, method="exact")
    approximate = knn_graph(x, 15, method="nndescent")
    assert approximate.meta["method"] == "nndescent" and approximate.indices.shape == (1500, 15)
    recall = np.mean([len(set(a) & set(e)) / 15 for a, e in zip(approximate.indices, exact.indices, strict=True)])
    assert recall > 0.95
    with pytest.raises(ValueError, match="unknown neighbour search"):
        knn_graph(x, 5, method="annoy")


def test_a_stratified_sample_keeps_each_class_share():
    labels = np.repeat(np.arange(4), [700, 200, 90, 10])
    sample = stratified_sample(labels, 100, random_state=0)
    assert len(sample) == 100 and len(np.unique(sample)) == 100 and (np.diff(sample) > 0).all()
    counts = np.bincount(labels[sample], minlength=4)
    np.testing.assert_allclose(counts, [70, 20, 9, 1], atol=1)
    assert (stratified_sample(labels, 5000) == np.arange(1000)).all()
    assert not np.array_equal(stratified_sample(labels, 100, random_state=1), sample)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    model, spec, provenance = pretrained_seed_cnn()
    data = load_mnist().subset(900, 300)
    return create_run(
        tmp_path_factory.mktemp("neighbors") / "r", data, model, spec, device="cpu", pca_kinds=("image", "dense")
    )


def test_the_run_stores_one_graph_per_layer_and_shares_it(run):
    graph = layer_neighbors(run, "fc2")
    assert run.has_array("neighbors/fc2.indices.npy") and run.has_array("neighbors/fc2.distances.npy")
    meta = Run(run.path).neighbor_meta("fc2")
    assert meta is not None and meta["input"] == "activations" and meta["k"] == 90 and meta["method"] == "exact"
    want = knn_graph(np.asarray(run.activations("fc2")), 90)
    np.testing.assert_array_equal(graph.indices, want.indices)
    # read back, not computed again
    again = layer_neighbors(Run(run.path), "fc2")
    assert again.meta["computed"] == meta["computed"]
    np.testing.assert_array_equal(again.indices, graph.indices)
    tsne = compute_projection(run, "fc2", "tsne", recompute=True)
    umap = compute_projection(run, "fc2", "umap", recompute=True)
    for projection in (tsne, umap):
        assert projection.meta["neighbors"] == {"method": "exact", "k": 90, "seconds": meta["seconds"]}
        assert projection.meta["knn_accuracy"] > 0.85
        assert "fit_sample" not in projection.meta
    assert Run(run.path).neighbor_meta("fc2")["computed"] == meta["computed"]
    assert "neighbors/fc2.indices.npy" in Run(run.path).layer_files("fc2")


def test_a_graph_of_pca_scores_is_computed_again_after_the_pca(run):
    first = layer_neighbors(run, "input")
    assert first.meta["input"] == "pca50"
    assert layer_neighbors(Run(run.path), "input").meta["input_version"] == first.meta["input_version"]
    compute_pca(run, ["input"])
    second = layer_neighbors(Run(run.path), "input")
    assert second.meta["input_version"] != first.meta["input_version"]
    assert second.meta["input_version"] == Run(run.path).file("features/input.pca.npy").name


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_past_the_threshold_a_sample_is_fitted_and_the_rest_placed(run, monkeypatch, method):
    monkeypatch.setattr(compute, "FIT_MAX", 1000)
    monkeypatch.setattr(compute, "FIT_SAMPLE", 500)
    monkeypatch.setattr(compute, "PLACE_CHUNK", 300)  # three transform calls
    steps = []
    projection = compute_projection(
        run, "fc2", method, recompute=True, progress=lambda task, done, total: steps.append((task, done, total))
    )
    meta = projection.meta
    assert meta["fit_sample"] == 500 and meta["placed"] == 700 and meta["n_points"] == 1200
    assert "stratified sample of 500" in meta["note"]
    assert np.isfinite(projection.embedding).all() and projection.embedding.shape == (1200, 2)
    # placed images land among their class as well as the fitted ones do, give or take
    assert meta["placed_knn_accuracy"] > 0.8 and meta["fitted_knn_accuracy"] > 0.8
    assert meta["placed_knn_accuracy"] > meta["fitted_knn_accuracy"] - 0.1
    placing = [done for task, done, _ in steps if task.startswith("placing")]
    assert placing == [0, 300, 600, 700]
    stored = Run(run.path).projection_meta("fc2", method)
    assert stored["fit_sample"] == 500


def test_transform_places_new_points_by_exact_search():
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=8, size=(3, 6))
    labels = np.repeat(np.arange(3), 200)
    x = (centres[labels] + rng.normal(size=(600, 6))).astype(np.float32)
    graph = knn_graph(x, 90)
    new = (centres[[0, 1, 2]] + rng.normal(size=(3, 6))).astype(np.float32)
    for estimator in (TSNE(random_state=0, neighbors=graph), UMAP(random_state=0, neighbors=graph)):
        embedding = estimator.fit_transform(x)
        placed = estimator.transform(new)
        means = np.stack([embedding[labels == c].mean(0) for c in range(3)])
        nearest = np.linalg.norm(placed[:, None] - means[None], axis=2).argmin(1)
        np.testing.assert_array_equal(nearest, [0, 1, 2])
    assert isinstance(UMAP(random_state=0, neighbors=graph).fit(x).umap_._knn_search_index, ExactIndex)
