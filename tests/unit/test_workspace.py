"""The workspace's pieces that need no browser: the address bar's format and parser, the views, the header's
search, and stopping background work (a t-SNE cancelled mid-way writes nothing and frees its thread)."""

import threading
import time

import numpy as np
import pytest

from layerscope.analysis import find_image
from layerscope.dashboard import create_app, ids, views
from layerscope.dashboard.address import format_address, parse_address, ranges, unranges
from layerscope.dashboard.jobs import Job
from layerscope.dashboard.layout import view_body
from layerscope.errors import LayerscopeError
from layerscope.progress import Cancelled, stoppable
from layerscope.projections.compute import compute_projection


@pytest.fixture(scope="module")
def state(tiny_run):
    return create_app(tiny_run).layerscope_state


def test_ranges_round_trip_and_reject_what_is_not_a_list_of_indices():
    assert ranges([9, 1, 2, 3, 7, 10, 2]) == "1-3,7,9-10"
    assert unranges("1-3,7,9-10", 11) == [1, 2, 3, 7, 9, 10]
    assert ranges([]) == ""
    for bad in ("1-3,x", "3-1", "5,12", "-1", "1--2", ""):
        assert unranges(bad, 11) is None, bad


def test_an_address_restores_what_it_was_made_from(state):
    panels = {"a": ["fc1", "pca", "predicted", "test"], "b": ["input", "pca", "label", "all"]}
    search = format_address(
        "network", 123, panels, {"layer": "conv2", "unit": 5}, [4, 5, 6, 10], {"true": 4, "pred": 9}
    )
    assert search.startswith("?view=network&image=123&a_layer=fc1")
    back = parse_address(search, state)
    assert back == {
        "view": "network",
        "image": 123,
        "panels": {
            "a": {"layer": "fc1", "method": "pca", "color": "predicted", "split": "test"},
            "b": {"layer": "input", "method": "pca", "color": "label", "split": "all"},
        },
        "unit": {"layer": "conv2", "unit": 5},
        "selection": [4, 5, 6, 10],
        "cell": {"true": 4, "pred": 9},
    }


def test_the_parser_keeps_what_the_run_has_and_drops_the_rest(state):
    n = state.n
    search = (
        f"?view=nowhere&image={n}&a_layer=no-such-layer&a_method=pca&a_color=rainbow&b_layer=fc2&b_method=magic"
        f"&b_split=test&unit=conv2:32&sel=0-{n}&cell=4,99&utm_source=mail&view=draw"
    )
    got = parse_address(search, state)
    # the last "view" wins; the layer B names is kept, its unknown method is not; everything out of range goes
    assert got == {"view": "draw", "panels": {"b": {"layer": "fc2", "split": "test"}}}
    assert parse_address("?image=mean:3", state)["image"] == "mean:3"
    assert parse_address(None, state) == {} and parse_address("?" + "x" * 30_000, state) == {}


def test_a_drawing_and_a_huge_selection_stay_out_of_the_address():
    search = format_address("explore", "draw:live", {}, None, list(range(0, 20_000, 2)))
    assert "image" not in search and "sel" not in search
    assert "sel=0-99" in format_address("explore", 0, {}, None, list(range(100)))


def test_views_and_the_gates_of_their_heavy_callbacks(tiny_run):
    assert [name for name, _, _ in views.shown(False)] == ["explore", "activations", "network"]
    assert views.check_view_name("intervene") == "intervene" and views.check_view_name(3) == "explore"
    app = create_app(tiny_run)
    # the page and every view it lays out later
    layout = str(app.layout) + "".join(str(view_body(app.layerscope_state, name)) for name in views.NAMES)
    gated = {}  # gate store -> the server callbacks behind it, as the page's renderer is told of them
    for spec in app._callback_list:
        for dep in spec["inputs"]:
            if dep["id"].startswith("gate-"):
                gated.setdefault(dep["id"], []).append((spec["output"], spec))
    assert sorted(gated) == sorted(ids.gate(name) for name in views.GATES)
    for name, (view, stores) in views.GATES.items():
        assert view in views.NAMES and f"'{ids.gate(name)}'" in layout
        assert all(f"'{store}'" in layout for store in stores), name
        for key, spec in gated[ids.gate(name)]:
            # behind a gate, a callback fires when its view is shown, never at page open or for what it follows (a
            # pattern-matching one serves components that the page opens without: an activation panel's rows)
            assert spec["prevent_initial_call"] or '["MATCH"]' in key, key
            assert not {dep["id"] for dep in spec["inputs"]} & set(stores), key


def test_search_takes_an_index_or_a_name():
    names = np.array(["train-0", "train-1", "test-2", "Cat_07"])
    assert find_image(names, "2") == 2 and find_image(names, " #3 ") == 3
    assert find_image(names, "TEST-2") == 2 and find_image(names, "cat_07") == 3
    with pytest.raises(LayerscopeError, match="there is no image 4: this Run has images 0 to 3"):
        find_image(names, "4")
    with pytest.raises(LayerscopeError, match="no image is called 'dog'"):
        find_image(names, "dog")


def test_stoppable_progress_raises_once_stopped():
    seen, stop = [], threading.Event()
    report = stoppable(lambda t, d, n: seen.append(d), stop.is_set)
    report("tsne", 1, 10)
    stop.set()
    with pytest.raises(Cancelled):
        report("tsne", 2, 10)
    assert seen == [1]


def test_a_job_says_its_eta_once_it_can():
    job = Job("fc2", "tsne")
    job.report("tsne", 0, 100)
    assert job.eta is None and job.describe() == "0% (tsne)"
    job.task_started -= 10  # ten seconds for a quarter of it
    job.report("tsne", 25, 100)
    assert job.eta == pytest.approx(30, abs=1)
    assert job.describe().startswith("25% (tsne), about 3") and job.describe().endswith(" s left")
    job.report("pca fc2", 1, 100)  # a new task restarts the clock
    assert job.eta is None


def test_cancelling_a_running_tsne_stops_it_writes_nothing_and_frees_the_thread(state, tiny_run):
    assert tiny_run.projection_meta("fc1", "tsne") is None
    job = state.start_projection("fc1", "tsne")
    deadline = time.monotonic() + 600
    while job.task != "tsne" and not job.finished and time.monotonic() < deadline:
        time.sleep(0.02)  # wait until the optimisation itself runs
    assert job.task == "tsne" and not job.finished
    assert state.cancel_projection("fc1", "tsne")
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert job.cancelled and job.error == "cancelled" and job.done < job.total
    assert tiny_run.reopen().projection_meta("fc1", "tsne") is None  # no half-optimised embedding kept
    assert not state.cancel_projection("fc1", "tsne")  # nothing runs any more
    # the thread is free: the next job runs to the end
    lda = state.start_projection("fc1", "lda")
    while not lda.finished and time.monotonic() < deadline:
        time.sleep(0.02)
    assert lda.error is None and tiny_run.reopen().projection_meta("fc1", "lda") is not None


def test_compute_projection_stops_from_its_progress(tiny_run):
    calls = []

    def progress(task, done, total):
        calls.append(task)
        if task == "tsne" and done > 0:
            raise Cancelled(task)

    before = tiny_run.reopen().projection_meta("fc2", "tsne")  # another test may have computed it
    with pytest.raises(Cancelled):
        compute_projection(tiny_run.reopen(), "fc2", "tsne", recompute=True, progress=progress)
    assert "tsne" in calls and tiny_run.reopen().projection_meta("fc2", "tsne") == before  # as it was


def test_the_dashboards_reductions_live_in_the_core():
    from layerscope.analysis import class_mean_images, confusion_cell, group_mean, quick_group, unit_summary

    values = np.arange(12, dtype=np.float32).reshape(6, 2)
    assert group_mean(values, [4, 0]).tolist() == [4.0, 5.0]
    conv = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3)
    assert unit_summary(conv, "conv").tolist() == [2.5, 8.5] and unit_summary(np.ones((1, 3)), "dense").shape == (3,)
    labels = np.array([0, 0, 1, 1, 2, 1])
    predicted = np.array([0, 1, 1, 0, 2, 0])
    split = np.array([1, 1, 1, 1, 1, 0])  # the last one is a training image
    assert confusion_cell(labels, predicted, split, 1, 0).tolist() == [3]
    assert quick_group(labels, predicted, "true", 1).tolist() == [2, 3, 5]
    assert quick_group(labels, predicted, "wrong-as", 0).tolist() == [3, 5]
    with pytest.raises(LayerscopeError, match="unknown group kind"):
        quick_group(labels, predicted, "odd", 0)
    images = np.array([[[[0]]], [[[255]]], [[[10]]], [[[20]]], [[[7]]], [[[30]]]], np.uint8)
    means = class_mean_images(images, labels, 4)
    assert means[:, 0, 0, 0].tolist() == [128, 20, 7, 0] and means.dtype == np.uint8


def test_the_points_a_projection_panel_shows():
    from layerscope.analysis import placed, shown_points

    split = np.array([0, 1, 1, 0, 1])
    embedding = np.array([[0, 0], [np.nan, 1], [1, 1], [2, np.inf], [3, 3]], np.float32)
    where = placed(embedding)
    assert where.tolist() == [True, False, True, False, True]
    assert shown_points(split, "all").all()
    assert np.flatnonzero(shown_points(split, "test", where)).tolist() == [2, 4]
    assert np.flatnonzero(shown_points(split, "train", where)).tolist() == [0]
    with pytest.raises(LayerscopeError, match="unknown split 'both'"):
        shown_points(split, "both")


def test_one_image_through_the_model_gives_each_layer_and_its_probabilities():
    import torch

    from layerscope.capture import image_outputs, image_pixels, layer_outputs
    from layerscope.models import SeedCNN

    torch.manual_seed(0)
    model = SeedCNN().eval()
    image = (np.arange(28 * 28) % 256).astype(np.uint8).reshape(28, 28)
    x = image_pixels(image)
    assert tuple(x.shape) == (1, 1, 28, 28) and float(x.max()) == 1.0
    assert float(x[0, 0, 0, 1]) == pytest.approx(1 / 255)
    outputs, probs = image_outputs(model, image, ["conv1", "fc2"])
    assert outputs["conv1"].shape == (16, 26, 26) and outputs["fc2"].shape == (64,)
    with torch.no_grad():
        direct = torch.softmax(model(x), dim=1)[0].numpy()
    np.testing.assert_allclose(probs, direct, rtol=1e-5)
    np.testing.assert_allclose(outputs["fc2"], layer_outputs(model, x, ["fc2"])["fc2"][0].numpy(), rtol=1e-6)


def test_the_confusion_matrix_counts_as_sklearns(tiny_run):
    from sklearn.metrics import confusion_matrix

    from layerscope.analysis import confusion, predictions

    predicted, _ = predictions(tiny_run)
    labels, split = np.asarray(tiny_run.labels), np.asarray(tiny_run.split)
    k = len(tiny_run.class_names)
    for which in (None, 0, 1):
        keep = np.ones(len(labels), bool) if which is None else split == which
        wanted = confusion_matrix(labels[keep], predicted[keep], labels=np.arange(k))
        got = confusion(tiny_run, which)
        assert got.shape == (k, k) and np.array_equal(got, wanted), which
    assert confusion(tiny_run, None).sum() == len(labels)
