"""The capture's sums (`layerscope.stats`): shards merged equal one pass, whatever the split and the order, and PCA
fitted from them equals PCA that sums on its own first pass."""

import numpy as np
import pytest
import torch

from layerscope.layers import LayerInfo
from layerscope.projections import PCA, Batches
from layerscope.stats import LayerSums, SumsCollector


def rows(n=3000, d=24, seed=0):
    """Rows whose mean (500) dwarfs their spread (3 to 0.3 along random directions, so that every principal
    component is well defined): the covariance is a small difference of large sums."""
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.standard_normal((d, d)))[0]
    x = (rng.standard_normal((n, d)) * np.geomspace(3, 0.3, d)) @ rotation
    labels = rng.integers(0, 5, n)
    return (x + 500 + labels[:, None]).astype(np.float32), labels


def one_pass(x, labels, batch=256):
    sums = LayerSums.empty(x.shape[1], 5)
    for start in range(0, len(x), batch):
        sums.update(x[start : start + batch], labels[start : start + batch])
    return sums


def covariance(totals, n):
    mean = totals["sum"] / n
    return (totals["xtx"] - n * np.outer(mean, mean)) / (n - 1)


def test_merged_shards_equal_one_pass_in_any_order():
    x, labels = rows()
    whole = one_pass(x, labels)
    cuts = [0, 1, 700, 700, 1999, 3000]  # a one-row shard and an empty one
    shards = [one_pass(x[a:b], labels[a:b], batch=100) for a, b in zip(cuts, cuts[1:], strict=False)]
    merged = LayerSums.empty(x.shape[1], 5)
    for i in (3, 0, 4, 1, 2):
        merged.merge(LayerSums.from_parts(shards[i].parts()))
    assert merged.n == whole.n == len(x)
    np.testing.assert_array_equal(merged.class_count, np.bincount(labels, minlength=5))
    got, want = merged.totals(), whole.totals()
    for part in ("sum", "xtx", "class_sum"):
        np.testing.assert_allclose(got[part], want[part], rtol=1e-12, err_msg=part)
    # and both are the sums of the rows, in float64, centred without cancelling
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(got["sum"], x64.sum(0), rtol=1e-12)
    np.testing.assert_allclose(covariance(got, len(x)), np.cov(x64, rowvar=False), rtol=1e-5, atol=1e-6)
    class_means = got["class_sum"] / merged.class_count[:, None]
    np.testing.assert_allclose(class_means, [x64[labels == c].mean(0) for c in range(5)], rtol=1e-12)


def test_the_collector_sums_dense_layers_up_to_the_exact_width_only():
    layers = [
        LayerInfo("input", "image", (1, 4, 4)),
        LayerInfo("conv", "conv", (2, 3, 3)),
        LayerInfo("fc", "dense", (3,)),
        LayerInfo("wide", "dense", (2000,)),
    ]
    labels = np.array([0, 1, 1, 0])
    collector = SumsCollector(layers, labels, 2)
    assert list(collector.sums) == ["fc"]
    out = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    collector(np.arange(4), {"fc": out, "conv": torch.zeros(4, 2, 3, 3), "wide": torch.zeros(4, 2000)})
    totals = collector.sums["fc"].totals()
    np.testing.assert_allclose(totals["xtx"], out.numpy().T.astype(np.float64) @ out.numpy())
    np.testing.assert_allclose(totals["class_sum"], [[9, 11, 13], [9, 11, 13]])


def test_pca_from_sums_is_one_pass_and_equals_pca_that_sums_itself():
    x, labels = rows(d=40)
    passes = []

    def stream():
        passes.append(1)
        return (x[i : i + 500] for i in range(0, len(x), 500))

    totals = one_pass(x, labels).totals()
    from_sums = PCA(10, solver="exact").use_sums(len(x), totals["sum"], totals["xtx"]).fit(Batches(stream, *x.shape))
    assert from_sums.from_sums_ and len(passes) == 1
    itself = PCA(10, solver="exact").fit(x)
    assert not itself.from_sums_
    np.testing.assert_allclose(from_sums.components_, itself.components_, atol=1e-5)
    np.testing.assert_allclose(from_sums.mean_, itself.mean_, rtol=1e-6)
    np.testing.assert_allclose(from_sums.explained_variance_, itself.explained_variance_, rtol=1e-5)
    np.testing.assert_allclose(from_sums.explained_variance_ratio_, itself.explained_variance_ratio_, rtol=1e-5)
    np.testing.assert_allclose(from_sums.embedding_, itself.embedding_, atol=1e-4 * np.abs(itself.embedding_).max())
    # the sums are used once: a second fit sums on its own again
    assert not from_sums.fit(x).from_sums_


def test_sums_of_other_rows_are_refused():
    x, labels = rows(n=200)
    totals = one_pass(x, labels).totals()
    with pytest.raises(ValueError, match="sums of 200 x 24 rows"):
        PCA(2, solver="exact").use_sums(200, totals["sum"], totals["xtx"]).fit(x[:100])
