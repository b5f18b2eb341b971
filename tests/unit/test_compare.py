"""Run against Run: linear CKA against its definition and its invariances, and ``compare`` against a direct count
of the predictions of two seed CNNs trained here on the same images."""

from __future__ import annotations

import json

import numpy as np
import pytest

from layerscope.compare import StreamingCKA, compare_runs, linear_cka
from layerscope.data import load_dataset
from layerscope.errors import LayerscopeError
from layerscope.pipeline import train_run
from layerscope.training import TrainConfig
from tests.conftest import cli, make_idx_dir, one_line_error


def _direct_cka(x: np.ndarray, y: np.ndarray) -> float:
    """Kornblith et al.'s definition: HSIC of the linear kernels K = XX^T, L = YY^T, centred by H = I - 11^T / n."""
    n = len(x)
    h = np.eye(n) - np.ones((n, n)) / n
    k, l_ = h @ (x @ x.T) @ h, h @ (y @ y.T) @ h

    def hsic(a, b):
        return np.trace(a @ b) / (n - 1) ** 2

    return hsic(k, l_) / np.sqrt(hsic(k, k) * hsic(l_, l_))


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 7))
    y = np.tanh(x @ rng.normal(size=(7, 5))) + 0.3 * rng.normal(size=(120, 5))
    return x, y


def test_cka_matches_its_definition_and_is_one_for_a_layer_with_itself(pair):
    x, y = pair
    assert linear_cka(x, y) == pytest.approx(_direct_cka(x, y), abs=1e-6)
    assert linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert 0 < linear_cka(x, y) < 1


def test_cka_ignores_rotations_scales_and_shifts(pair):
    x, y = pair
    q, _ = np.linalg.qr(np.random.default_rng(1).normal(size=(7, 7)))
    base = linear_cka(x, y)
    assert linear_cka(x @ q, y) == pytest.approx(base, abs=1e-9)
    assert linear_cka(3.5 * x + 2.0, 0.1 * y) == pytest.approx(base, abs=1e-9)
    # not invariant to any linear map: stretching one axis changes it
    assert abs(linear_cka(x * np.array([10, 1, 1, 1, 1, 1, 1]), y) - base) > 1e-3


def test_cka_summed_over_batches_equals_one_pass(pair):
    x, y = pair
    streamed = StreamingCKA([7, 5], [5])
    for start in range(0, 120, 50):
        streamed.add([x[start : start + 50], y[start : start + 50]], [y[start : start + 50]])
    result = streamed.result()
    assert result.shape == (2, 1)
    assert result[0, 0] == pytest.approx(_direct_cka(x, y), abs=1e-6) and result[1, 0] == pytest.approx(1.0)
    dead = StreamingCKA([1], [5])
    dead.add([np.zeros((10, 1))], [y[:10]])
    assert dead.result()[0, 0] == 0.0  # a layer that never varies is like no other
    with pytest.raises(ValueError, match="same images"):
        streamed.add([x[:3], y[:3]], [y[:4]])


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("compare")
    data = load_dataset(str(make_idx_dir(root / "toy", size=12)))
    runs = [
        train_run(root / f"run{seed}", data, TrainConfig(epochs=2, seed=seed, device="cpu", augment=0))
        for seed in (0, 1)
    ]
    other = load_dataset(str(make_idx_dir(root / "other", size=12, n_train=40)))
    runs.append(train_run(root / "other-run", other, TrainConfig(epochs=1, device="cpu", augment=0)))
    return runs


def test_compare_counts_what_a_direct_computation_counts(two_runs):
    a, b, _ = two_runs
    result = compare_runs(a, b)
    labels = np.asarray(a.labels)
    pa, pb = np.asarray(a.probs).argmax(1), np.asarray(b.probs).argmax(1)
    assert result.agreement == pytest.approx(float(np.mean(pa == pb)))
    assert result.a_only.tolist() == np.flatnonzero((pa == labels) & (pb != labels)).tolist()
    assert result.b_only.tolist() == np.flatnonzero((pb == labels) & (pa != labels)).tolist()
    assert result.layers_a == a.layer_names and result.cka.shape == (len(a.layer_names), len(b.layer_names))
    assert np.isfinite(result.cka).all() and (result.cka >= -1e-9).all() and (result.cka <= 1 + 1e-9).all()
    # the input is the same pixels in both
    assert result.cka[0, 0] == pytest.approx(1.0, abs=1e-9)
    # a Run against itself: every layer is itself, and the output layer of each Run matches its own probabilities
    itself = compare_runs(a, a)
    np.testing.assert_allclose(np.diag(itself.cka), 1.0, atol=1e-9)
    assert itself.agreement == 1.0 and len(itself.a_only) == len(itself.b_only) == 0
    assert result.features["a"]["fc2"] == "activations"
    wide = [name for name, how in result.features["a"].items() if how == "pca50"]
    # a conv map is compared by its PCA scores (the Run keeps only its channel summaries), a dense layer whole
    assert wide == [info.name for info in a.layers if info.kind == "conv" or info.dims > 1024]


def test_compare_command(two_runs, capsys):
    a, b, other = two_runs
    code, out, _ = cli(capsys, "compare", a.path, b.path, "--json", "--device", "cpu")
    assert code == 0
    data = json.loads(out)
    assert set(data) >= {"agreement", "a_only_correct", "b_only_correct", "cka"}
    assert data["cka"]["a_layers"] == a.layer_names and len(data["cka"]["values"]) == len(a.layer_names)
    assert data["a_only_correct"]["count"] == sum(data["a_only_correct"]["per_class"].values())
    code, out, _ = cli(capsys, "compare", a.path, b.path, "--device", "cpu")
    assert code == 0 and "linear CKA" in out and "only A right" in out
    line = one_line_error(capsys, "compare", a.path, other.path)
    assert "different images" in line and "same dataset" in line
    with pytest.raises(LayerscopeError, match="different images"):
        compare_runs(a, other)
