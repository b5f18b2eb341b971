"""The training timeline: snapshots kept while a seed CNN trains here on generated images (each a Run whose values
are the snapshot's weights' own), a layer's PCA aligned across them by orthogonal Procrustes, and the animation."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from layerscope.data import load_dataset
from layerscope.errors import LayerscopeError, RunError
from layerscope.models.loading import build_model, load_weights
from layerscope.pipeline import seed_cnn_spec, train_run
from layerscope.run import Run
from layerscope.timeline import render_gif, timeline
from layerscope.training import TrainConfig, predict_proba, snapshot_steps
from tests.conftest import cli, make_idx_dir, one_line_error

CONFIG = TrainConfig(epochs=2, batch_size=16, seed=3, device="cpu", augment=0)


def test_snapshot_steps():
    assert snapshot_steps(10, 3, 47) == [0, 16, 31, 47, 63, 78, 94, 110, 125, 141]
    assert snapshot_steps("epoch", 3, 47) == [0, 47, 94, 141]
    assert snapshot_steps(2, 1, 5) == [0, 5]
    assert snapshot_steps(50, 1, 5) == [0, 1, 2, 3, 4, 5]  # never more than there are steps
    for bad in (1, 0, "often"):
        with pytest.raises(LayerscopeError, match="--snapshots"):
            snapshot_steps(bad, 3, 47)


@pytest.fixture(scope="module")
def snap_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("timeline")
    data = load_dataset(str(make_idx_dir(root / "toy", size=12)))
    return train_run(root / "run", data, CONFIG, snapshots=4), data


def test_snapshots_are_runs_of_the_network_as_it_was(snap_run):
    run, data = snap_run
    listed = run.snapshots
    steps = 4 * 2  # 60 training images in batches of 16, two epochs
    assert [e["step"] for e in listed] == [0, 3, 5, steps] and [e["index"] for e in listed] == [0, 1, 2, 3]
    assert [e["path"] for e in listed] == ["snapshots/00", "snapshots/01", "snapshots/02", "."]
    assert listed[-1]["epoch"] == 2.0 and listed[1]["epoch"] == pytest.approx(0.75)
    assert run.snapshot(-1) is run and run.snapshot(3) is run  # the last snapshot is the trained network
    assert listed[-1]["test_accuracy"] == run.manifest["metrics"]["test_accuracy"]
    spec = seed_cnn_spec(data)
    for k in range(3):
        snapshot = run.snapshot(k)
        assert snapshot.layer_names == run.layer_names and snapshot.manifest["snapshot"]["step"] == listed[k]["step"]
        # its stored predictions are those of its weights, and its images the Run's own (one file, linked)
        model = build_model(spec, trusted=True)
        load_weights(model, snapshot.path / "weights.safetensors")
        np.testing.assert_allclose(snapshot.probs, predict_proba(model, data, device="cpu"), atol=1e-5)
        assert (snapshot.path / "images.npy").stat().st_ino == (run.path / "images.npy").stat().st_ino
        assert snapshot.has_features("fc1", "pca_components") and snapshot.projection_meta("fc2", "pca")
        # what is computed when first asked for: its top images, its PCA's quality figures (the timeline's)
        assert not snapshot.manifest.get("topk") and "knn_accuracy" not in snapshot.projection_meta("fc2", "pca")
        # the input's PCA is the Run's own (the same pixels), a conv layer's waits until it is asked for
        assert snapshot.file("features/input.pca.npy").stat().st_ino == run.file("features/input.pca.npy").stat().st_ino
        np.testing.assert_array_equal(snapshot.projection("input", "pca"), run.projection("input", "pca"))
        assert snapshot.projection_meta("conv2", "pca") is None
    # snapshot 0 is the untrained network: the weights the model starts from with the training's seed
    torch.manual_seed(CONFIG.seed)
    untrained = build_model(spec, trusted=True)
    first = build_model(spec, trusted=True)
    load_weights(first, run.snapshot(0).path / "weights.safetensors")
    for a, b in zip(untrained.state_dict().values(), first.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
    assert not np.allclose(run.snapshot(0).probs, run.probs, atol=1e-3)  # training changed it
    with pytest.raises(RunError, match="out of range"):
        run.snapshot(4)
    usage = run.disk_usage()
    assert set(usage["snapshots"]) == {"snapshots/00", "snapshots/01", "snapshots/02"}
    # the images are counted once, not once per snapshot
    assert usage["total"] < sum(f.stat().st_size for f in run.path.rglob("*") if f.is_file())


def test_aligned_pca_turns_each_snapshot_onto_the_next(snap_run, tmp_path):
    run, _ = snap_run
    line = timeline(run, "fc2")
    own = [np.asarray(run.snapshot(k).projection("fc2", "pca"), np.float64) for k in range(4)]
    aligned = line.embeddings.astype(np.float64)
    assert aligned.shape == (4, run.n_images, 2)
    # the trained network as the Run's own PCA shows it: the dashboard's timeline ends where its projection is
    np.testing.assert_allclose(aligned[-1], np.asarray(run.projection("fc2", "pca")), atol=1e-5)

    def radius(e):
        return np.sqrt(((e - e.mean(0)) ** 2).sum(1).mean())

    scaled = [e * radius(own[-1]) / radius(e) for e in own]  # each snapshot at the trained network's spread
    for k in range(3):
        # an orthogonal map of the scaled PCA: every pairwise distance as in the snapshot's own PCA, times its scale
        rotation = np.linalg.lstsq(scaled[k], aligned[k], rcond=None)[0]
        np.testing.assert_allclose(rotation.T @ rotation, np.eye(2), atol=1e-4)
        assert radius(aligned[k]) == pytest.approx(radius(own[-1]), rel=1e-4)
        # and the images move less than between the snapshots' own PCAs (Frobenius: Procrustes' optimum)
        assert np.linalg.norm(aligned[k] - aligned[k + 1]) <= np.linalg.norm(scaled[k] - scaled[k + 1]) + 1e-6
        entry = line.meta["snapshots"][k + 1]
        assert entry["displacement"] == pytest.approx(np.linalg.norm(aligned[k + 1] - aligned[k], axis=1).mean())
    assert all(0 < e["knn_accuracy"] <= 1 and 0 < e["trustworthiness"] <= 1 for e in line.meta["snapshots"])
    stored = Run(run.path).manifest["timelines"]["fc2"]["pca"]
    assert [e["step"] for e in stored["snapshots"]] == [0, 3, 5, 8]
    assert "timelines/fc2/pca.npy" in Run(run.path).layer_files("fc2")
    np.testing.assert_array_equal(timeline(Run(run.path), "fc2").embeddings, line.embeddings)  # read back
    gif = render_gif(run, line, tmp_path / "fc2.gif")
    with Image.open(gif) as image:
        assert image.n_frames == 4 and image.size == (480, 480)


def test_train_and_timeline_commands(tmp_path, capsys):
    data = make_idx_dir(tmp_path / "toy", size=12)
    out = tmp_path / "run"
    code, stdout, _ = cli(
        capsys, "train", "--dataset", data, "--out", out, "--epochs", "1", "--batch-size", "32", "--snapshots",
        "epoch", "--device", "cpu",
    )  # fmt: skip
    assert code == 0 and "snapshots" in stdout and "(the Run)" in stdout
    code, stdout, _ = cli(capsys, "info", out, "--json")
    listed = json.loads(stdout)["snapshots"]
    assert [e["step"] for e in listed] == [0, 2] and listed[0]["bytes"] > 0 and listed[1]["bytes"] is None
    code, stdout, _ = cli(capsys, "timeline", out, "--layer", "fc1", "--out", tmp_path / "t.gif")
    assert code == 0 and "pca of fc1 through training" in stdout and (tmp_path / "t.gif").is_file()
    line = one_line_error(capsys, "train", "--dataset", data, "--out", tmp_path / "x", "--snapshots", "1")
    assert "--snapshots" in line and not (tmp_path / "x").exists()
    # a video for a report: every snapshot, the moves between them in between (PyAV reads it back)
    code, stdout, _ = cli(capsys, "timeline", out, "--layer", "fc1", "--out", tmp_path / "t.mp4")
    assert code == 0 and "saved" in stdout
    import av

    with av.open(str(tmp_path / "t.mp4")) as video:
        stream = video.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(stream)]
    # two snapshots: the first held, a half-second move, the trained network held: 12 + 11 + 48 frames at 24 fps
    assert stream.width == 480 and len(frames) == 12 + 11 + 48
    moved = (np.abs(frames[0].astype(int) - frames[-1].astype(int)).max(axis=2) > 60).sum()
    assert moved > 40  # pixels of points (2x2 each) that were not there before: the points moved
    assert not list(tmp_path.glob(".t.mp4.partial*"))
    line = one_line_error(capsys, "timeline", out, "--layer", "fc1", "--out", tmp_path / "t.webm")
    assert ".gif" in line and ".mp4" in line and not (tmp_path / "t.webm").exists()
    plain = tmp_path / "plain"
    assert cli(capsys, "train", "--dataset", data, "--out", plain, "--epochs", "1", "--device", "cpu")[0] == 0
    line = one_line_error(capsys, "timeline", plain, "--layer", "fc1")
    assert "no training snapshots" in line and "--snapshots" in line


def test_a_tsne_started_from_the_snapshot_before_moves_points_less_than_fresh_ones(snap_run):
    from layerscope.projections.compute import _method_input
    from layerscope.projections.tsne import TSNE
    from layerscope.timeline import spread

    run, _ = snap_run
    line = timeline(run, "fc1", "tsne")
    assert line.embeddings.shape == (4, run.n_images, 2) and np.isfinite(line.embeddings).all()
    assert all(0 < e["trustworthiness"] <= 1 for e in line.meta["snapshots"])
    chained = [e["displacement"] for e in line.meta["snapshots"][1:]]
    # each snapshot's t-SNE from its own PCA start, as a projection of that snapshot alone would be
    fresh = []
    for k in range(4):
        x, _ = _method_input(run.snapshot(k), "fc1", "cpu", lambda *a: None, None)
        fresh.append(spread(TSNE(random_state=0).fit_transform(x)))
    moved_fresh = [np.linalg.norm(fresh[k] - fresh[k - 1], axis=1).mean() for k in range(1, 4)]
    assert sum(chained) < sum(moved_fresh), (chained, moved_fresh)


def test_aligned_umap_over_the_snapshots(snap_run):
    run, _ = snap_run
    line = timeline(run, "fc2", "umap")
    assert line.embeddings.shape == (4, run.n_images, 2) and np.isfinite(line.embeddings).all()
    assert line.meta["alignment"].startswith("AlignedUMAP")
    assert all(e["knn_accuracy"] > 0 for e in line.meta["snapshots"])
    assert "umap" in Run(run.path).manifest["timelines"]["fc2"]


# -- the dashboard's side: a snapshot's state, the timeline's arrays, Run against Run --------------------------------


def test_the_dashboard_serves_a_snapshots_network_and_the_timelines_arrays(snap_run):
    from layerscope.dashboard import create_app
    from layerscope.dashboard.timeline_card import changed_group

    run, _ = snap_run
    app = create_app(run)
    state = app.layerscope_state
    assert state.at(None) is state and state.at(3) is state  # the last snapshot is the Run as trained
    early = state.at(1)
    assert early.snapshot == 1 and early.at(None) is early and state.at(1) is early  # made once, kept
    np.testing.assert_array_equal(early.values("fc2"), np.asarray(run.snapshot(1).activations("fc2")))
    with pytest.raises(LayerscopeError, match="snapshot 7 is out of range") as e:
        state.at(7)
    assert "\n" not in str(e.value)
    # a panel's timeline as the browser fetches it: (snapshots, images, 2) float32, the stored one
    client = app.server.test_client()
    timeline(run, "fc2")
    got = client.get("/_layerscope/timeline?layer=fc2&method=pca")
    assert got.status_code == 200 and got.headers["X-Shape"] == f"4,{run.n_images},2"
    np.testing.assert_array_equal(
        np.frombuffer(got.data, "<f4").reshape(4, -1, 2), np.asarray(run.array("timelines/fc2/pca.npy"))
    )
    for bad, says in (("layer=fc9&method=pca", "fc9"), ("layer=conv1&method=tsne", "no tsne timeline of conv1")):
        answer = client.get(f"/_layerscope/timeline?{bad}")
        assert answer.status_code == 400 and says in answer.get_json()["error"]
    # each snapshot's mistakes, for the misclassified rings
    wrong = np.frombuffer(client.get("/_layerscope/timeline-wrong").data, np.uint8).reshape(4, -1)
    labels = np.asarray(run.labels)
    for k in range(4):
        np.testing.assert_array_equal(wrong[k], np.asarray(run.snapshot(k).probs).argmax(1) != labels)
    # the changed-prediction group: the images the snapshot before classed differently
    groups, _ = changed_group(state, 1, 2, {})
    before, after = (np.asarray(run.snapshot(k).probs).argmax(1) for k in (1, 2))
    assert groups == {"prediction changed 1→2": np.flatnonzero(before != after).tolist()}
    with pytest.raises(LayerscopeError, match="untrained network has no snapshot before it"):
        changed_group(state, 1, 0, {})


def test_compare_mode_needs_the_same_images(snap_run, tmp_path, capsys):
    from layerscope.dashboard import create_app
    from layerscope.dashboard.compare_card import open_layers

    run, _ = snap_run
    app = create_app(run, compare=run.snapshot(1))
    state = app.layerscope_state
    assert state.compare is not None and state.side("b") is state.compare and state.side("a") is state
    assert open_layers(state, {"points": [{"x": "fc1", "y": "conv2"}]}) == ("conv2", "fc1")
    with pytest.raises(LayerscopeError, match="layer of Run B"):
        open_layers(state, {"points": [{"x": "fc9", "y": "conv2"}]})
    other = train_run(
        tmp_path / "other", load_dataset(str(make_idx_dir(tmp_path / "toy", size=12, n_train=40))), CONFIG
    )
    with pytest.raises(LayerscopeError) as e:
        create_app(run, compare=other)
    assert "\n" not in str(e.value) and "images" in str(e.value)
    line = one_line_error(capsys, "serve", run.path, "--compare", other.path, "--no-browser", "--port", "1")
    assert "images" in line
