import numpy as np
import pytest
from sklearn.decomposition import PCA as SkPCA

from layerscope.projections import PCA, Batches
from layerscope.projections.pca import fit_together


def low_rank(n=1500, d=300, seed=0):
    rng = np.random.default_rng(seed)
    scales = np.geomspace(20, 0.5, 30)
    x = (rng.standard_normal((n, 30)) * scales) @ rng.standard_normal((30, d)) + 0.2 * rng.standard_normal((n, d))
    return (x + 3).astype(np.float32)


def aligned(a, b):
    """Flip a's columns to b's signs."""
    return a * np.sign((a * b).sum(0))


@pytest.mark.parametrize("solver, k", [("exact", 2), ("exact", 50), ("randomized", 50)])
def test_matches_scikit_learn(solver, k):
    x = low_rank()
    ours = PCA(k, solver=solver, random_state=0).fit(x)
    ref = SkPCA(2, svd_solver="full").fit(x)
    top = ref.transform(x)
    np.testing.assert_allclose(aligned(ours.embedding_[:, :2], top), top, atol=1e-3 * np.abs(top).max())
    np.testing.assert_allclose(ours.explained_variance_[:2], ref.explained_variance_, rtol=1e-4)
    np.testing.assert_allclose(ours.explained_variance_ratio_[:2], ref.explained_variance_ratio_, rtol=1e-4)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-5, atol=1e-5)
    # transform of the fitted data reproduces embedding_
    np.testing.assert_allclose(ours.transform(x)[:, :2], ours.embedding_[:, :2], atol=1e-3 * np.abs(top).max())


def test_streamed_batches_equal_in_memory():
    x = low_rank(n=700, d=120)
    batches = Batches(lambda: (x[i : i + 64] for i in range(0, len(x), 64)), *x.shape)
    a = PCA(5, solver="randomized", random_state=1).fit(batches).embedding_
    b = PCA(5, solver="randomized", random_state=1).fit(x).embedding_
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_fit_together_equals_separate_fits():
    x, z = low_rank(seed=1), low_rank(d=40, seed=2)
    together = {"x": PCA(10, random_state=0), "z": PCA(10, random_state=0)}
    fit_together(
        together,
        {"x": x.shape, "z": z.shape},
        lambda names: iter([{"x": x[:800], "z": z[:800]}, {"x": x[800:], "z": z[800:]}]),
    )
    for name, data in (("x", x), ("z", z)):
        alone = PCA(10, random_state=0).fit(data)
        np.testing.assert_allclose(together[name].embedding_, alone.embedding_, rtol=1e-4, atol=1e-3)
    assert together["x"].solver_ == "exact" and together["z"].solver_ == "exact"


def test_auto_solver_picks_randomized_for_wide_data():
    x = low_rank(n=300, d=400)
    assert PCA(2, exact_max_dim=100, random_state=0).fit(x).solver_ == "randomized"


def test_signs_are_deterministic():
    x = low_rank()
    a = PCA(3, solver="exact").fit(x).components_
    b = PCA(3, solver="randomized", random_state=5).fit(x).components_
    np.testing.assert_allclose(a, b, atol=1e-3)


def counted_batches(x, size=100):
    """Batches of ``x`` that count how many passes were made over them."""
    passes = [0]

    def make():
        passes[0] += 1
        return (x[i : i + size] for i in range(0, len(x), size))

    return Batches(make, *x.shape), passes


def separated(n, d, offset, seed):
    """Random rows with 8 well-separated leading variances (each 2.6x the next) and noise, around ``offset``."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal((n, 8)) * np.geomspace(30, 1, 8)) @ np.linalg.qr(rng.standard_normal((d, 8)))[0].T
    return (x + 0.2 * rng.standard_normal((n, d)) + offset).astype(np.float32)


@pytest.mark.parametrize("solver", ["exact", "randomized"])
def test_rows_kept_in_memory_take_one_pass_and_give_the_same_fit(solver):
    x = separated(900, 150, 3, seed=3)
    streamed, streamed_passes = counted_batches(x)
    kept, kept_passes = counted_batches(x)
    a = PCA(8, solver=solver, random_state=2).fit(streamed)
    b = PCA(8, solver=solver, random_state=2, keep_rows_bytes=x.nbytes).fit(kept)
    assert streamed_passes[0] == (2 if solver == "exact" else 4) and kept_passes[0] == 1
    np.testing.assert_allclose(b.embedding_, a.embedding_, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(b.explained_variance_ratio_, a.explained_variance_ratio_, rtol=1e-5)
    assert not hasattr(b, "_x")  # the copy is released after the fit


@pytest.mark.parametrize("solver", ["exact", "randomized"])
def test_matches_scikit_learn_on_random_data_with_a_large_offset(solver):
    # rows far from the origin (mean 1000, variances 1-900): float32 sums and products must not cancel
    x = separated(600, 40, 1000, seed=7)
    ours = PCA(3, solver=solver, n_iter=6, random_state=0, keep_rows_bytes=x.nbytes).fit(
        Batches(lambda: (x[i : i + 64] for i in range(0, len(x), 64)), *x.shape)
    )
    ref = SkPCA(3, svd_solver="full").fit(x.astype(np.float64))
    top = ref.transform(x.astype(np.float64))
    np.testing.assert_allclose(aligned(ours.embedding_, top), top, atol=2e-3 * np.abs(top).max())
    np.testing.assert_allclose(ours.explained_variance_ratio_, ref.explained_variance_ratio_, rtol=2e-3)
    np.testing.assert_allclose(ours.mean_, ref.mean_, rtol=1e-6, atol=1e-4)
