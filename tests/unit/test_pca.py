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
        lambda: iter([{"x": x[:800], "z": z[:800]}, {"x": x[800:], "z": z[800:]}]),
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
