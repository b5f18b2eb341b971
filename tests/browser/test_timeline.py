"""The training timeline and Run against Run in the dashboard: the seed CNN trained here (the tiny preset: 4,000
MNIST images) keeping 4 snapshots; the slider and Play move the projections' points through them, the accuracy curve
marks the snapshot shown, the changed predictions become a group; ``--compare`` shows a snapshot beside the trained
Run, brushing linked across them, the CKA heatmap's cell opening its two layers."""

import json

import numpy as np
import pytest

from layerscope.analysis import predictions
from layerscope.data import load_mnist
from layerscope.pipeline import train_run
from layerscope.run import Run
from layerscope.training import PRESETS, TrainConfig
from tests.browser.conftest import BUSY, opened, serving, settle
from tests.browser.test_dashboard import GRAPH, lasso, wait_lit

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def snap_run(tmp_path_factory):
    config = TrainConfig(device="cpu", **PRESETS["tiny"])  # type: ignore[arg-type]
    return train_run(tmp_path_factory.mktemp("timeline") / "run", load_mnist(), config, snapshots=4)


@pytest.fixture(scope="module")
def timeline_server(snap_run):
    with serving(snap_run) as url:
        yield url


# where panel A's plot draws image i: its data coordinates, found by the image's index in the traces' customdata
POSITION = """([sel, i]) => { const gd = document.querySelector(sel);
    for (const t of gd._fullData) {
        if (t.name === 'misclassified' || !t.customdata) continue;
        const j = Array.prototype.indexOf.call(t.customdata, i);
        if (j >= 0) return [t.x[j], t.y[j]];
    }
    return null; }"""


def shown_snapshot(page, k):
    """Wait until both projections show snapshot ``k`` (assets/timeline.js marks a plot once its points are there)."""
    page.wait_for_function(
        """k => Array.from(document.querySelectorAll('.proj-graph .js-plotly-plot'))
                   .every(gd => gd.dataset.snapshot === String(k))""",
        arg=k,
        timeout=BUSY,
    )


def test_the_slider_moves_the_points_to_the_snapshot_and_marks_it_on_the_accuracy_curve(
    browser_context, snap_run, timeline_server
):
    with opened(browser_context, timeline_server) as page:
        before = page.evaluate(POSITION, [GRAPH.format("a"), 7])
        for _ in range(3):
            page.click("#tl-back")
        shown_snapshot(page, 0)
        run = Run(snap_run.path)
        line = np.asarray(run.array("timelines/fc2/pca.npy"))  # computed when the page first showed a snapshot
        assert line.shape == (4, run.n_images, 2)
        after = page.evaluate(POSITION, [GRAPH.format("a"), 7])
        np.testing.assert_allclose(after, line[0, 7], rtol=1e-5, atol=1e-5)  # where the untrained network has it
        np.testing.assert_allclose(before, line[3, 7], rtol=1e-4, atol=1e-4)  # the trained network: the Run's PCA
        assert np.linalg.norm(np.subtract(after, before)) > 1e-3
        entry = run.snapshots[0]
        marker = page.evaluate("() => document.querySelector('#tl-curve .js-plotly-plot').data[1]")
        assert marker["x"] == [entry["step"]] and marker["y"] == [pytest.approx(entry["test_accuracy"])]
        assert page.text_content("#tl-readout").startswith("snapshot 0 of 3 · step 0")
        assert page.text_content("#tl-badge") == " · training snapshot 0 (epoch 0.00)"  # in the header, every view
        # the quality figures are the snapshot's own
        meta = run.manifest["timelines"]["fc2"]["pca"]["snapshots"][0]
        page.wait_for_function(
            "q => document.querySelector('#proj-a .proj-quality').textContent.includes(q)",
            arg=f"{meta['knn_accuracy']:.3f}",
        )
        # the misclassified rings are the untrained network's mistakes, hidden under the legend (most are wrong)
        wrong = np.flatnonzero(np.asarray(run.snapshot(0).probs).argmax(1) != np.asarray(run.labels))
        rings = page.evaluate(
            """sel => { const gd = document.querySelector(sel);
                   const t = gd._fullData.find(t => t.name === 'misclassified');
                   return [Array.from(t.customdata), t.visible]; }""",
            GRAPH.format("a"),
        )
        assert sorted(rings[0]) == wrong.tolist() and rings[1] == "legendonly"


def test_play_animates_the_points_through_every_snapshot(browser_context, timeline_server):
    with opened(browser_context, timeline_server) as page:
        page.click("#tl-next")  # the slider at the trained network already: the points stay where they are
        shown_snapshot(page, 3)
        page.evaluate(
            """sel => { const gd = document.querySelector(sel); window.__seen = [];
                   new MutationObserver(() => window.__seen.push([gd.dataset.snapshot, gd.dataset.frames]))
                       .observe(gd, {attributes: true, attributeFilter: ['data-snapshot']});
                   // the button's labels as they change: on a tiny Run the play may be over before a read
                   const button = document.querySelector('#tl-play'); window.__labels = [];
                   new MutationObserver(() => window.__labels.push(button.textContent))
                       .observe(button, {childList: true, characterData: true, subtree: true}); }""",
            GRAPH.format("a"),
        )
        page.click("#tl-play")
        page.wait_for_function("() => window.__labels.includes('❚❚ Pause')", timeout=BUSY)
        page.wait_for_function(
            "() => document.querySelector('#tl-play').textContent === '▶ Play'"
            " && document.querySelector('" + GRAPH.format("a") + "').dataset.snapshot === '3'",
            timeout=BUSY,
        )
        seen = page.evaluate("() => window.__seen")
        # from the untrained network to the trained one, forward only (a move the page cannot keep up with goes
        # straight to the newest snapshot: a loaded machine may skip one)
        shown = [int(k) for k, _ in seen]
        assert shown[0] == 0 and shown[-1] == 3 and len(shown) >= 3 and shown == sorted(set(shown)), seen
        # each move drawn in several frames between the snapshots, not a jump
        assert all(int(frames) >= 2 for _, frames in seen), seen


def test_the_changed_prediction_group_holds_the_images_whose_prediction_changed(
    browser_context, snap_run, timeline_server
):
    with opened(browser_context, timeline_server) as page:
        page.click("#tl-back")  # snapshot 2, from the trained network's 3
        page.wait_for_function("() => /snapshot 1 to 2/.test(document.querySelector('#tl-changed').textContent)")
        run = Run(snap_run.path)
        before, after = predictions(run.snapshot(1))[0], predictions(run.snapshot(2))[0]
        changed = np.flatnonzero(before != after)
        assert 0 < len(changed) and f"{len(changed):,} images" in page.text_content("#tl-changed")
        page.click("#tl-changed")
        page.wait_for_selector("#group-list :text('prediction changed 1→2')")
        groups = json.loads(page.evaluate("() => window.sessionStorage.getItem('groups')"))
        assert groups["prediction changed 1→2"] == changed.tolist()


def test_the_activation_panels_show_the_snapshots_network(browser_context, snap_run, timeline_server):
    row = "() => Array.from(document.querySelectorAll('#panel-fc2 .act-row .cell')).map(c => c.title)"
    run = Run(snap_run.path)

    def expected(values):
        return [f"unit {u}: {x:.3f}" for u, x in enumerate(values)]

    with opened(browser_context, timeline_server) as page:
        page.click("#add-button")  # the first image, a row in the fc2 panel
        page.click("#nav-activations")
        page.wait_for_function(f"want => ({row})().join() === want", arg=",".join(expected(run.activations("fc2")[0])))
        page.click("#nav-explore")
        for _ in range(3):
            page.click("#tl-back")
        shown_snapshot(page, 0)
        page.click("#nav-activations")
        untrained = expected(np.asarray(run.snapshot(0).activations("fc2"))[0])
        assert untrained != expected(run.activations("fc2")[0])
        page.wait_for_function(f"want => ({row})().join() === want", arg=",".join(untrained), timeout=BUSY)


@pytest.fixture(scope="module")
def compare_server(snap_run):
    """The trained Run beside its snapshot 1 (a Run of the same images: the network early in training)."""
    with serving(snap_run, compare=Run(snap_run.path / "snapshots" / "01")) as url:
        yield url


def test_compare_mode_links_brushing_across_the_two_runs(browser_context, snap_run, compare_server):
    with opened(browser_context, compare_server) as page:
        assert "Run B · 01" in page.text_content("#proj-b")
        lasso(page, "a", 3, 40)
        picked = page.evaluate(
            "sel => Array.from(document.querySelector(sel)._fullData[3].customdata).slice(0, 40)", GRAPH.format("a")
        )
        assert wait_lit(page, "b", 40) == sorted(picked)  # the same images, lit in Run B's projection
        # and the comparison: agreement and the images only one Run gets right, as computed from their predictions
        page.wait_for_selector("#cmp-cka .js-plotly-plot .heatmaplayer image", timeout=BUSY, state="attached")
        labels = np.asarray(snap_run.labels)
        a = predictions(snap_run)[0]
        b = predictions(Run(snap_run.path / "snapshots" / "01"))[0]
        summary = page.text_content("#cmp-summary")
        assert f"{(a == b).mean():.2%}" in summary
        assert f"{int(((a == labels) & (b != labels)).sum()):,} A right, B wrong" in summary
        page.locator("button:has-text('Group: A right, B wrong')").click()
        page.wait_for_selector("#group-list :text('A right, B wrong')")
        groups = json.loads(page.evaluate("() => window.sessionStorage.getItem('groups')"))
        assert groups["A right, B wrong"] == np.flatnonzero((a == labels) & (b != labels)).tolist()


def test_a_cka_cell_click_opens_those_two_layers(browser_context, compare_server):
    with opened(browser_context, compare_server) as page:
        heatmap = "#cmp-cka .js-plotly-plot"
        page.wait_for_selector(f"{heatmap} .heatmaplayer image", timeout=BUSY, state="attached")
        settle(page)
        page.locator(heatmap).scroll_into_view_if_needed()
        # the cell of A's conv2 (a row) and B's fc1 (a column), where plotly drew it
        x, y = page.evaluate(
            """sel => { const gd = document.querySelector(sel); const t = gd._fullData[0];
                   const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                   const box = gd.querySelector('.main-svg').getBoundingClientRect();
                   return [box.left + xa._offset + xa.l2p(t.x.indexOf('fc1')),
                           box.top + ya._offset + ya.l2p(t.y.indexOf('conv2'))]; }""",
            heatmap,
        )
        page.mouse.move(x, y, steps=4)
        page.mouse.click(x, y)
        page.wait_for_function(
            """() => document.querySelector('#proj-a .proj-layer').textContent.includes('conv2')
                     && document.querySelector('#proj-b .proj-layer').textContent.includes('fc1')""",
            timeout=BUSY,
        )
