"""The dashboard's callbacks are module-level functions of the app's state (dashboard/wiring.py): called here
directly on the tiny trained Run, with no browser and no server, inside the Dash context a request gives them."""

from __future__ import annotations

import base64
import io
import json
import shutil
import time
from contextvars import copy_context
from typing import Any

import numpy as np
import pytest
from dash import no_update
from dash._callback_context import context_value
from dash._utils import AttributeDict
from PIL import Image

from layerscope.dashboard import activations, gallery, groups, ids, inside, interventions, projection, sidebar
from layerscope.dashboard.app import create_app
from layerscope.dashboard.state import DashboardState
from layerscope.errors import LayerscopeError
from layerscope.run import Run
from tests.unit.test_server_guard import prop


def called(function: Any, *args: Any, trigger: str | None = None) -> Any:
    """``function(*args)`` as Dash runs it for a request that ``trigger`` ("id.property") fired."""

    def run() -> Any:
        fired = [{"prop_id": trigger, "value": 1}] if trigger else []
        context_value.set(AttributeDict(triggered_inputs=fired, outputs_list=[], inputs_list=[], states_list=[]))
        return function(*args)

    return copy_context().run(run)


def project(
    state: Any, layer: str, method: str, split: str = "all", tick: Any = None, status: Any = None, trigger=None
):
    """A projection panel's figure callback (coloured by true label), as a request ``trigger`` fired runs it."""
    return called(
        projection.projection,
        state,
        layer,
        method,
        "label",
        split,
        tick,
        None,
        None,
        None,
        False,
        status,
        trigger=trigger,
    )


@pytest.fixture(scope="module")
def state(tiny_run) -> DashboardState:
    return DashboardState(tiny_run)


def _points(figure: Any) -> int:
    """The points a panel's figure draws: the page gets it as JSON, arrays as base64 (``{"dtype", "bdata"}``)."""
    figure = figure if isinstance(figure, dict) else figure.to_plotly_json()
    total = 0
    for trace in figure["data"]:
        x = trace.get("x")
        if trace.get("name") == "misclassified" or x is None:
            continue
        total += len(np.frombuffer(base64.b64decode(x["bdata"]), dtype=x["dtype"])) if isinstance(x, dict) else len(x)
    return total


def test_a_projection_panel_draws_every_image_of_its_split(state):
    layer_changed = prop(ids.proj("layer", "a"), "value")
    for split, wanted in (("all", state.n), ("test", int((state.split == 1).sum()))):
        figure, status, quality, star = project(state, "fc2", "pca", split=split, trigger=layer_changed)
        assert status == "" and star is False
        assert _points(figure) == wanted, split
        assert any(f"{wanted:,} points" in str(part.children) for part in quality)
    # a layer the Run does not have: the panel says so, nothing is drawn
    figure, status, _, _ = project(state, "fc9", "pca", trigger=layer_changed)
    assert "fc9" in str(status.children) and not figure.data


def test_a_failed_projection_is_said_once_and_started_again_only_when_chosen_again(state, monkeypatch):
    from layerscope.dashboard.jobs import Job

    key = ("fc1", "isomap")
    failed = Job(*key)
    failed.error, failed.finished = "MemoryError: the machine ran out of memory", True
    monkeypatch.setitem(state.jobs, key, failed)
    started = []
    monkeypatch.setattr(state, "start_projection", lambda *key: started.append(key) or failed)
    tick = "jobs-interval.n_intervals"
    for _ in range(3):  # the page's poll: no new start, the error stays
        figure, status, _, _ = project(state, "fc1", "isomap", tick=1, status="computing", trigger=tick)
        assert "Isomap of fc1 failed: MemoryError" in str(status.children) and "choose the method" in str(status)
    assert started == []
    # choosing the method again starts it again
    project(state, "fc1", "isomap", tick=1, trigger="x.value")
    assert started == [key]


def test_the_method_list_follows_the_layer(state):
    options, value, _, source, style = projection.methods(state, "fc2", None, "tsne", None)
    assert [o["value"] for o in options] == state.methods("fc2") and value is no_update  # t-SNE stays chosen
    assert source is no_update and style == {"display": "none"}  # no token layer: no "projected from"
    value = projection.methods(state, "fc2", None, "file", None)[1]  # the tiny Run has no file: the first method
    assert value == state.methods("fc2")[0]
    with pytest.raises(LayerscopeError, match="layer"):
        projection.methods(state, "nope", None, "pca", None)


def test_hovering_a_point_names_its_image(state):
    i = int(np.flatnonzero(state.labels != state.predicted)[0])  # a misclassified one: both labels differ
    src, text = projection.hover(state, i)
    assert src.startswith("data:image/png")
    words = " ".join(str(part.children) for part in text)
    names = state.class_names
    assert state.name(i) in words
    assert f"true {names[state.labels[i]]}" in words and f"predicted {names[state.predicted[i]]}" in words


def test_a_confusion_cell_fills_the_gallery_and_the_selection(state):
    names = [str(n) for n in state.class_names]
    i = int(np.flatnonzero((state.labels != state.predicted) & (state.split == 1))[0])
    true, pred = int(state.labels[i]), int(state.predicted[i])
    click = {"points": [{"x": names[pred], "y": names[true]}]}
    cell, members, origin = called(gallery.confusion_click, state, click, None, trigger="confusion.clickData")
    expected = [
        j for j in range(state.n) if state.split[j] == 1 and state.labels[j] == true and state.predicted[j] == pred
    ]
    assert cell == {"true": true, "pred": pred} and members == expected and i in members and origin is None
    # Clear filter: no cell, no selection
    assert called(gallery.confusion_click, state, click, 1, trigger="gallery-clear-filter.n_clicks") == (None, [], None)
    # the cell's images fill the gallery and are not listed again above it; a lasso made since is
    assert gallery.brushed_strip(state, members, cell, None) == []
    lassoed = [j for j in range(state.n) if j not in members][:3]
    strip = gallery.brushed_strip(state, lassoed, cell, None)
    assert strip and all(f"'key': {j}" in str(strip) for j in lassoed)


def test_the_gallery_pages_stop_at_the_last_and_the_first(state, monkeypatch):
    monkeypatch.setattr(gallery, "PAGE", 2)  # several pages of the tiny Run's images
    key = gallery.gallery_key(state, 1, "confidence", 0, None)
    last = gallery.page_count(state, key) - 1
    assert last >= 2
    nxt, prev = f"{ids.GALLERY_NEXT}.n_clicks", f"{ids.GALLERY_PREV}.n_clicks"
    assert called(gallery.page, state, 1, 1, 1, "confidence", None, 0, trigger=nxt) == min(1, last)
    assert called(gallery.page, state, 1, 1, 1, "confidence", None, last, trigger=nxt) == last
    # a page past the end (an old address) steps back from the last, not from where it was
    assert called(gallery.page, state, 1, 1, 1, "confidence", None, last + 5, trigger=prev) == max(0, last - 1)
    assert called(gallery.page, state, 1, 1, 1, "confidence", None, 0, trigger=prev) == 0
    assert called(gallery.page, state, 1, 1, 2, "confidence", None, 3, trigger=f"{ids.GALLERY_DIGIT}.value") == 0
    # the line under the gallery counts the same pages
    assert f"/ {last + 1} ·" in gallery.gallery_page(state, key, None)[1]


def test_a_quick_group_holds_the_images_misclassified_as_its_class(state):
    k = int(np.bincount(state.predicted[state.labels != state.predicted]).argmax())  # the commonest wrong answer
    result, name_box, error = called(
        groups.groups, state, 0, 1, [], [], [], [], "", "wrong-as", k, None, {}, trigger="group-quick-add.n_clicks"
    )
    name = f"misclassified as {state.class_names[k]}"
    wrong = [j for j in range(state.n) if state.predicted[j] == k and state.labels[j] != k]
    assert error == "" and name_box is no_update and result == {name: wrong} and wrong


def test_opening_an_activation_panel_checks_its_layer(state):
    opened = called(activations.panels, state, 1, [], "fc2", [], trigger="panel-open.n_clicks")
    assert opened == ["fc2"]
    with pytest.raises(LayerscopeError, match="layer"):
        called(activations.panels, state, 1, [], "fc9", [], trigger="panel-open.n_clicks")


def test_a_page_opening_on_a_projection_the_run_lacks_draws_it_once_computed(tiny_run, tmp_path):
    # the page comes with its panels' first figures; one the Run lacks is computed on the page's first poll, and a
    # panel that says it is computing draws it on the next tick, also in a page that opened after it was done
    path = shutil.copytree(tiny_run.path, tmp_path / "run")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["projections"]["fc2"]["pca"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    state = DashboardState(Run(path))
    assert projection.default_views(state)[0] == ("fc2", "pca") and projection.opens_waiting(state)
    panel = projection.projection_panel(state, "a", "fc2", "pca")
    status = next(c for c in panel._traverse() if getattr(c, "id", None) == ids.proj("status", "a")).children
    assert status.startswith(projection.COMPUTING)
    tick = "jobs-interval.n_intervals"
    _, started, _, _ = project(state, "fc2", "pca", tick=1, status=status, trigger=tick)
    assert started.startswith(projection.COMPUTING)
    job = state.jobs[("fc2", "pca")]
    for _ in range(600):
        if job.finished:
            break
        time.sleep(0.1)
    assert job.finished and job.error is None
    state.scratch.mark_seen(job)  # as a page that opened once it was done: no redraw owed for the job itself
    figure, shown, quality, _ = project(state, "fc2", "pca", tick=2, status=status, trigger=tick)
    assert shown == "" and _points(figure) == state.n


def test_the_sidebar_card_shows_the_selected_image(state):
    right = int(np.flatnonzero(state.labels == state.predicted)[0])
    wrong = int(np.flatnonzero(state.labels != state.predicted)[0])
    for i, explainable in ((right, False), (wrong, True)):
        card = sidebar.selected_card(state, i)
        assert card["image"].startswith("data:image/png") and card["name"] == state.name(i) and card["key"] == i
        assert card["explainable"] is explainable  # only a misclassified image has something to explain
        words = [text for text, _ in card["line"]]
        assert words[1] == state.class_names[state.labels[i]] and words[3] == state.class_names[state.predicted[i]]
        assert card["line"][-1] == (("misclassified", "bad") if explainable else ("correct", "ok"))
        bars = card["figure"]["data"][0]  # figure JSON
        assert len(bars["x"]) == len(state.class_names) and sum(bars["x"]) == pytest.approx(1, abs=1e-4)
        assert bars["x"].index(max(bars["x"])) == state.predicted[i] and card["bars"]["x"] == bars["x"]
    average = sidebar.selected_card(state, "mean:2")
    assert average["name"] == f"average {state.class_names[2]}" and not average["explainable"]
    with pytest.raises(LayerscopeError, match="image index"):
        sidebar.selected_card(state, state.n)


def test_the_sidebar_card_and_feature_maps_are_served_by_url(tiny_run):
    app = create_app(tiny_run)
    client = app.server.test_client()
    card = client.get("/_layerscope/selected?image=5")
    assert card.status_code == 200 and card.headers["Cache-Control"] == "no-store"
    assert card.get_json()["name"] == app.layerscope_state.name(5)
    bad = client.get("/_layerscope/selected?image=-1")
    assert bad.status_code == 400 and "no image" in bad.get_json()["error"]
    state = app.layerscope_state
    layer = state.conv_layers[0]
    url = inside.fmap_url(state, layer, 5, "channel")
    strip = client.get(url)
    assert strip.status_code == 200 and strip.mimetype == "image/png"
    channels, h, w = state.feature_maps(5)[layer].shape
    assert Image.open(io.BytesIO(strip.data)).size == (channels * w, h)  # the maps side by side
    for wrong, what in (("layer=nope", "layer"), ("scale=log", "colour scale"), ("image=draw:live", "drawing")):
        name = wrong.split("=")[0]
        asked = "&".join(part if not part.startswith(name + "=") else wrong for part in url.split("?")[1].split("&"))
        answer = client.get("/_layerscope/fmap?" + asked)
        assert answer.status_code == 400 and what in answer.get_json()["error"], wrong


def test_an_activation_panel_draws_a_row_per_image_group_and_class(state):
    i = 3
    rows = [{"kind": "image", "key": i}, {"kind": "class", "key": 1}, {"kind": "group", "key": "mine"}]
    groups = {"mine": [0, 1, 2]}
    ident = {"type": ids.PANEL_SORT, "layer": "fc2"}
    gate = "gate-panels.data"
    body, legend = called(activations.panel, state, 1, "mean", ident, rows, groups, [4, 5], None, None, trigger=gate)
    drawn = [part for part in body if "act-row" in (part.className or "")]
    names = [str(row.children[1].children) for row in drawn]
    assert len(drawn) == 4 and names[1] == f"average {state.class_names[1]}" and names[3] == "brushed points (mean)"
    assert names[2] == "group mine" and state.name(i) in names[0]
    values = state.values("fc2")
    assert all(len(row.children[2].children) == values.shape[1] for row in drawn)
    # sorted by the rows' mean: the first cell of every row is the unit with the largest mean over the rows
    rows_drawn = [values[i], state.class_means("fc2")[1], values[[0, 1, 2]].mean(0), values[[4, 5]].mean(0)]
    first = int(drawn[0].children[2].children[0].to_plotly_json()["props"]["data-unit"])
    assert first == int(np.argmax(np.stack(rows_drawn).mean(0)))
    assert float(legend[0].children) <= float(legend[2].children)
    # a panel of a layer the Run does not have says so, in the panel
    error, _ = called(
        activations.panel, state, 1, "mean", {"layer": "fc9"}, rows, groups, None, None, None, trigger=gate
    )
    assert error.className == "bad" and "fc9" in error.children


def test_a_scale_the_browser_cannot_read_is_said_not_taken_as_zero(state):
    layer = state.activation_layers[-1]
    add = f"{ids.ABL_ADD}.n_clicks"
    edit = interventions.edit
    before = [{"layer": layer, "units": [1], "scale": 0.5}]
    data, message = called(edit, state, 1, *[None] * 8, layer, "0", None, None, [], before, trigger=add)
    assert "Write the scale as a number" in message and data == before
    data, message = called(edit, state, 1, *[None] * 8, layer, "0", 2.0, None, [], before, trigger=add)
    assert not message and [(a["layer"], a["units"], a["scale"]) for a in data] == [
        (layer, [1], 0.5),
        (layer, [0], 2.0),
    ]
