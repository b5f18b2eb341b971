"""`layerscope capture RUN [--engine ray]`: the local and the Ray engine write the same Run (the dense layers' sums
for PCA too, which PCA then takes in place of its first pass), a Ray worker killed mid-capture is restarted and its
batches run again, and a capture that fails leaves the Run as it was. Ray runs on
this machine (two CPUs, as the CI machine has); the Run is the shipped weights over 1,500 MNIST images."""

import builtins
import os
import shutil
import signal
import subprocess

import numpy as np
import pytest

from layerscope.cli import main as cli_main
from layerscope.data import load_mnist
from layerscope.engine import capture_run
from layerscope.errors import LayerscopeError, RunError
from layerscope.interop.seed_json import import_nn_data
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.pipeline import create_run
from layerscope.projections.compute import compute_pca
from layerscope.run import Run
from layerscope.stats import stored_sums
from tests import nn_data

ray = pytest.importorskip("ray")

BATCH = 64  # 24 batches: many blocks in flight between two workers


@pytest.fixture(scope="module")
def original(tmp_path_factory):
    model, spec, provenance = pretrained_seed_cnn()
    data = load_mnist().subset(1200, 300)
    return create_run(tmp_path_factory.mktemp("engines") / "r", data, model, spec, device="cpu", pca_kinds=())


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    yield
    ray.shutdown()


@pytest.fixture(autouse=True)
def print_untouched():
    """Ray's tqdm replaces builtins.print in the driver for good; numba then fails to compile pynndescent later in
    the same process. The Ray capture must leave it as it found it."""
    yield
    assert type(builtins.print).__name__ == "builtin_function_or_method", builtins.print


def copy(run: Run, path) -> Run:
    return Run(shutil.copytree(run.path, path))


def arrays(run: Run) -> dict[str, np.ndarray]:
    """Every array a capture writes, by the Run's names: the sums of dense layers too."""
    names = ["probs.npy"]
    for layer in run.layer_names:
        names += [name for name in run.layer_files(layer) if name.startswith(("activations/", "topk/", "stats/"))]
    return {name: np.asarray(run.array(name, kinds="fiu")) for name in names}


def assert_same(got: dict[str, np.ndarray], want: dict[str, np.ndarray]) -> None:
    """Floats to 1e-6, top-k indices and positions exactly."""
    assert got.keys() == want.keys()
    for name, array in want.items():
        if name.endswith(("indices.npy", "positions.npy")):
            np.testing.assert_array_equal(got[name], array, err_msg=name)
        else:
            np.testing.assert_allclose(got[name], array, rtol=1e-6, atol=1e-6, err_msg=name)


def leftovers(run: Run) -> list[str]:
    return sorted(p.name for p in run.path.iterdir() if p.name.startswith(".capture"))


def test_a_local_capture_writes_the_run_it_had(original, tmp_path):
    run = copy(original, tmp_path / "local")
    before = arrays(run)
    meta = capture_run(run, "local", batch_size=BATCH, device="cpu")
    assert meta["engine"] == "local" and meta["batch_size"] == BATCH
    again = Run(run.path)
    after = arrays(again)
    assert after.keys() == before.keys() and len(after) > 20
    for name, array in before.items():
        np.testing.assert_allclose(after[name], array, rtol=1e-6, atol=1e-6, err_msg=name)
    assert again.manifest["capture"]["engine"] == "local"
    assert again.manifest["metrics"] == pytest.approx(original.manifest["metrics"])
    assert leftovers(again) == []


def test_a_ray_capture_equals_the_local_one(original, tmp_path, cluster):
    local = copy(original, tmp_path / "local")
    on_ray = copy(original, tmp_path / "ray")
    capture_run(local, "local", batch_size=BATCH, device="cpu")
    seen = []
    meta = capture_run(on_ray, "ray", workers=2, batch_size=BATCH, progress=lambda task, done, total: seen.append(done))
    assert meta["engine"] == "ray" and meta["workers"] == 2 and meta["worker_processes"] == 2
    assert seen[-1] == 1500 and seen == sorted(seen) and len(seen) > 10
    assert_same(arrays(Run(on_ray.path)), arrays(Run(local.path)))
    assert Run(on_ray.path).manifest["metrics"] == Run(local.path).manifest["metrics"]
    assert leftovers(Run(on_ray.path)) == []


def test_a_ray_capture_through_a_staging_directory_equals_the_local_one_and_leaves_it_empty(
    original, tmp_path, cluster
):
    local = copy(original, tmp_path / "local")
    on_ray = copy(original, tmp_path / "ray")
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / ".capture-rows.999999999.gone.tmp").mkdir()  # what a killed capture left
    capture_run(local, "local", batch_size=BATCH, device="cpu")
    meta = capture_run(on_ray, "ray", workers=2, batch_size=BATCH, staging=shared)
    assert 0 < meta["staged_bytes"] < 1500 * 4 * 400
    assert_same(arrays(Run(on_ray.path)), arrays(Run(local.path)))
    assert list(shared.iterdir()) == [] and leftovers(Run(on_ray.path)) == []


def test_staged_rows_that_did_not_all_arrive_are_refused(original, tmp_path):
    from layerscope.staging import BatchRows, StagedRows, create_rows

    path = tmp_path / "rows.zarr"
    create_rows(path, original.layers, original.n_images, len(original.class_names), BATCH)
    rows = BatchRows(path)
    for columns in rows.batch(0, BATCH).values():  # one batch of 24 arrives
        columns[0:BATCH] = np.ones((BATCH, columns.stop - columns.start), np.float32)
    rows.write()
    with pytest.raises(LayerscopeError, match="23 of the capture's 24 batches are not in .*--staging"):
        StagedRows(path).check_complete()


def test_pca_from_the_capture_sums_equals_pca_from_scratch_and_a_new_capture_replaces_them(original, tmp_path):
    run = copy(original, tmp_path / "run")
    capture_run(run, "local", batch_size=BATCH, device="cpu")
    run = Run(run.path)
    dense = [info.name for info in run.layers if info.kind == "dense"]
    assert dense and all(stored_sums(run, name) is not None for name in dense)
    scratch = copy(run, tmp_path / "scratch")
    scratch.update_manifest(lambda m: m.pop("stats"))
    assert stored_sums(scratch, dense[0]) is None
    from_sums = compute_pca(run, dense, quality=False)
    from_rows = compute_pca(scratch, dense, quality=False)
    for name in dense:
        assert from_sums[name].meta["capture_sums"] and from_sums[name].meta["passes"] == 1
        assert not from_rows[name].meta["capture_sums"] and from_rows[name].meta["passes"] == 2
        got, want = from_sums[name].embedding, from_rows[name].embedding  # float32 scores up to ~50
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
        # the map that places new inputs: the mean, and the two components shown (the trailing ones of a layer
        # with dead units span a null space in which any basis is right)
        got, want = (Run(r.path).features(name, "pca_components")[:2] for r in (run, scratch))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
        got, want = (Run(r.path).features(name, "pca_mean") for r in (run, scratch))
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5, err_msg=name)
        ratios = [p[name].meta["explained_variance_ratio"] for p in (from_sums, from_rows)]
        np.testing.assert_allclose(*ratios, rtol=1e-5)

    # activations rewritten without new sums (an older layerscope's capture): the sums are of other rows now
    layer = dense[0]
    changed = np.asarray(run.activations(layer)) * 2 + 1
    with run.update() as up:
        up.write_array(f"activations/{layer}.npy", changed)
    assert stored_sums(run, layer) is None
    fitted = compute_pca(run, [layer], quality=False)[layer]
    assert not fitted.meta["capture_sums"]
    np.testing.assert_allclose(Run(run.path).features(layer, "pca_mean"), changed.mean(0), rtol=1e-5, atol=1e-5)
    # a new capture brings sums of what it stores, in place of the old ones
    old_files = {part: Run(run.path).file(f"stats/{layer}.{part}.npy") for part in ("sum", "xtx")}
    capture_run(run, "local", batch_size=BATCH, device="cpu")
    run = Run(run.path)
    sums = stored_sums(run, layer)
    assert (
        sums is not None
        and run.manifest["stats"]["layers"][layer]["of"] == run.manifest["files"][f"activations/{layer}.npy"]
    )
    assert not any(path.exists() for path in old_files.values())
    rows = np.asarray(run.activations(layer), np.float64)
    np.testing.assert_allclose(sums["sum"], rows.sum(0), rtol=1e-6)
    np.testing.assert_allclose(sums["xtx"], rows.T @ rows, rtol=1e-6, atol=1e-6 * np.abs(rows.T @ rows).max())
    labels = np.asarray(run.labels)
    np.testing.assert_array_equal(sums["class_counts"], np.bincount(labels, minlength=len(run.class_names)))
    np.testing.assert_allclose(sums["class_sum"][3], rows[labels == 3].sum(0), rtol=1e-6, atol=1e-6)


def _worker_pids() -> list[int]:
    found = subprocess.run(["pgrep", "-f", "ray::MapWorker"], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


def test_a_worker_killed_mid_capture_is_restarted_and_the_run_is_complete(original, tmp_path, cluster):
    local = copy(original, tmp_path / "local")
    on_ray = copy(original, tmp_path / "ray")
    capture_run(local, "local", batch_size=BATCH, device="cpu")
    killed = []
    earlier = set(_worker_pids())  # a cluster shut down just before may still be exiting

    def kill_one(task, done, total):
        if 0 < done < total and not killed:
            pids = [pid for pid in _worker_pids() if pid not in earlier]
            assert pids, "no Ray worker to kill"
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    capture_run(on_ray, "ray", workers=2, batch_size=BATCH, progress=kill_one)
    assert killed and killed[0] not in _worker_pids()
    assert_same(arrays(Run(on_ray.path)), arrays(Run(local.path)))


class Stop(Exception):
    pass


@pytest.mark.parametrize("engine", ["local", "ray"])
def test_a_capture_that_fails_leaves_the_run_as_it_was(original, tmp_path, cluster, engine):
    run = copy(original, tmp_path / engine)
    manifest = (run.path / "manifest.json").read_bytes()
    files = sorted(p.relative_to(run.path) for p in run.path.rglob("*") if p.is_file())

    def stop(task, done, total):
        if done > 0:
            raise Stop

    with pytest.raises(Stop):
        capture_run(run, engine, batch_size=BATCH, device="cpu", progress=stop)
    assert (run.path / "manifest.json").read_bytes() == manifest
    assert sorted(p.relative_to(run.path) for p in run.path.rglob("*") if p.is_file()) == files
    assert leftovers(run) == []


def test_engine_options_are_checked(original):
    with pytest.raises(LayerscopeError, match="unknown capture engine 'spark'"):
        capture_run(original, "spark")
    with pytest.raises(LayerscopeError, match="add --engine ray"):
        capture_run(original, "local", workers=2)
    with pytest.raises(LayerscopeError, match="add --engine ray"):
        capture_run(original, "local", staging=original.path)
    with pytest.raises(LayerscopeError, match="--staging /nonexistent: no such directory"):
        capture_run(original, "ray", staging="/nonexistent")
    with pytest.raises(LayerscopeError, match="at least 1"):
        capture_run(original, "ray", workers=0)


def test_a_run_without_a_model_is_refused(tmp_path):
    run = import_nn_data(nn_data.write(tmp_path / "NN_data.json"), tmp_path / "imported")
    with pytest.raises(RunError, match="has no model"):
        capture_run(run, "local")


def test_the_command_line_says_what_is_wrong_in_one_line(original, capsys, monkeypatch):
    for argv, message in (
        (["capture", str(original.path), "--engine", "spark"], "unknown capture engine 'spark'"),
        (["capture", str(original.path), "--workers", "2"], "add --engine ray"),
        (["project", str(original.path), "--layer", "fc2", "--method", "tsne", "--engine", "spark"], "unknown engine"),
    ):
        monkeypatch.setattr("sys.argv", ["layerscope", *argv])
        with pytest.raises(SystemExit) as exit_info:
            cli_main()
        assert exit_info.value.code == 2
        printed = capsys.readouterr().err.strip()
        assert message in printed and len(printed.splitlines()) == 1


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_a_projection_past_its_sample_places_the_other_images_on_ray(original, tmp_path, cluster, monkeypatch, method):
    from layerscope.projections import compute

    # 1,500 images past a fitted sample of 600: 900 placed, in 4 tasks of 250
    monkeypatch.setattr(compute, "FIT_MAX", 1000)
    monkeypatch.setattr(compute, "FIT_SAMPLE", 600)
    monkeypatch.setattr(compute, "PLACE_CHUNK", 250)
    here = compute.compute_projection(copy(original, tmp_path / "here"), "fc2", method, recompute=True)
    there = compute.compute_projection(copy(original, tmp_path / "ray"), "fc2", method, recompute=True, engine="ray")
    assert here.meta["placed_on"] == "local" and there.meta["placed_on"] == "ray"
    assert there.meta["fit_sample"] == 600 and there.meta["placed"] == 900 and "on Ray" in there.meta["note"]
    sample = compute.stratified_sample(np.asarray(original.labels), 600, 0)
    # the sample is fitted the same way; the placed images land where a local transform puts them
    np.testing.assert_allclose(there.embedding[sample], here.embedding[sample], atol=1e-5)
    spread = np.ptp(here.embedding, axis=0).max()
    assert np.median(np.abs(there.embedding - here.embedding).max(axis=1)) < 0.02 * spread
    assert there.meta["placed_knn_accuracy"] > 0.8
    assert abs(there.meta["placed_knn_accuracy"] - here.meta["placed_knn_accuracy"]) < 0.03
