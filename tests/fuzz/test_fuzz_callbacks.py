"""The dashboard's callbacks and its routes (Draw, the selected image's card, feature maps) sent generated values
(Hypothesis), through Flask's test client as dash-renderer and the page's scripts would send them: image indices,
layers, methods, unit numbers, the units box, group names, stores and drawings that the page never offers. Every
answer is a 200/204 or a 4xx of one sentence, never a 500; and every bad value is caught by a check (a sentence that
says what to do), not by the net for the unforeseen."""

from __future__ import annotations

import logging
import os
import shutil
from typing import Any

import pytest
from dash import MATCH
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from layerscope.dashboard import create_app, ids
from layerscope.dashboard.activations import PANEL_SORTS
from layerscope.dashboard.inside import FMAP_ROUTE
from layerscope.dashboard.live import ROUTE
from layerscope.dashboard.messages import UNEXPECTED
from layerscope.dashboard.sidebar import SELECTED_ROUTE
from layerscope.run import Run
from tests.unit.test_server_guard import LOCAL, OPEN_GATES, UPDATE, callback_body, one_sentence, prop, side_notice

FUZZ = settings(
    max_examples=int(os.environ.get("LAYERSCOPE_FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

odd = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([-1, 2**31, 2**53, 10**30, -(10**30), 1e300, float("inf"), float("nan"), 0.5])
    | st.floats()
    | st.text(max_size=12)
    | st.sampled_from(["", "../../x", "a/b", ".hidden", "x" * 300, "fc\x001", "\u202e", "mean:", "draw:", "0-"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=10,
)


class Errors(logging.Handler):
    """The records of level ERROR the dashboard logs: an exception that no check caught."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(scope="module")
def app(tiny_run, tmp_path_factory):
    # a copy: whatever a generated request might make the page compute or save stays out of the shared Run
    run = Run(shutil.copytree(tiny_run.path, tmp_path_factory.mktemp("fuzz") / "run"))
    return create_app(run)


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


@pytest.fixture(scope="module")
def errors():
    handler = Errors()
    logger = logging.getLogger("layerscope.dashboard")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.fixture(scope="module")
def values(app):
    """Strategies for the values a page sends, each mixing the page's own options with anything at all."""
    state = app.layerscope_state
    n, k = state.n, len(state.class_names)
    index = st.sampled_from([0, 1, n - 1, n, -1, -n, 10**9]) | st.integers()
    image = index | st.sampled_from(["mean:0", f"mean:{k - 1}", f"mean:{k}", "mean:-1", "mean:01", "draw:live"])
    layer = st.sampled_from([*state.layers, "nope", "fc2 ", "FC2"])
    return {
        "index": index | odd,
        "image": image | odd,
        "layer": layer | odd,
        "activation_layer": st.sampled_from(state.activation_layers) | layer | odd,
        "method": st.sampled_from(["pca", "file", "PCA", "tsne2"]) | odd,  # none that starts a background job
        "split": st.sampled_from(["all", "train", "test", "both"]) | odd,
        "colour": st.sampled_from(["label", "predicted", "correct", "confidence", "blue"]) | odd,
        "selection": st.none() | st.lists(index, max_size=6) | st.just(list(range(n))) | odd,
        "pairs": st.lists(st.lists(st.integers(-2, 12), min_size=2, max_size=2), max_size=5) | odd,
        "units": st.sampled_from(["3", "0-15", "0-100000000000", "1,2,x", "-1", "3-1", "", " ", "9" * 600]) | odd,
        "name": st.sampled_from(["mine", "", " ", "x" * 101, "tab\there", "selection 1"]) | st.text() | odd,
        "unit": st.fixed_dictionaries({"layer": st.sampled_from(state.activation_layers) | odd, "unit": index}) | odd,
        "row": st.fixed_dictionaries({"kind": st.sampled_from(["image", "class", "group", "x"]), "key": image}),
        "ablation": st.fixed_dictionaries(
            {"layer": st.sampled_from(["fc2", "conv2", "input", "nope"]), "units": st.lists(index, max_size=3)}
        ),
    }


_VIEW = (("layer", "layer"), ("method", "method"), ("split", "split"), ("color", "colour"))


def check(response, errors: Errors, seen: int) -> None:
    """Never a 500; an error is one sentence; a failed callback's notice comes from a check, not the net."""
    event(f"status {response.status_code}")
    if response.status_code == 200 and response.is_json and isinstance(response.get_json(), dict):
        event("notice" if side_notice(response) else "answered")
    assert response.status_code != 500, response.get_data(as_text=True)[:500]
    if response.status_code >= 400:
        body = response.get_json(silent=True)
        text = body.get("error", "") if isinstance(body, dict) else response.get_data(as_text=True)
        assert one_sentence(text), text
    elif response.status_code == 200 and response.is_json:
        notice = side_notice(response) if isinstance(response.get_json(), dict) else None
        assert notice is None or ("\n" not in notice and not notice.startswith(UNEXPECTED)), notice
    assert len(errors.records) == seen, [r.getMessage() for r in errors.records[seen:]]


def run_callback(
    app, client, errors, output: str, inputs: dict[str, Any], changed: str | None = None, match: Any = None
) -> None:
    """The callback as the page sends it with every view shown once (gates open: the heavy callbacks run)."""
    seen = len(errors.records)
    body = callback_body(app, output, {**OPEN_GATES, **inputs}, changed, match)
    check(client.post(UPDATE, json=body, headers=LOCAL), errors, seen)


@FUZZ
@given(data=st.data())
def test_image_views(app, client, errors, values, data):
    selected = data.draw(values["image"])
    common = {
        "selected.data": selected,
        "draw-version.data": 0,
        "fmap-scale.value": data.draw(st.sampled_from(["channel", "layer"]) | odd),
        "fmap-focus.data": data.draw(
            st.fixed_dictionaries({"layer": values["layer"], "unit": values["index"]}) | st.none() | odd
        ),
        "unit.data": data.draw(values["unit"]),
        "attr-method.value": data.draw(st.sampled_from(["saliency", "gradcam", "nope"]) | odd),
        "attr-target.value": data.draw(st.sampled_from([-1, 0, 9, 10, None]) | odd),
        "attr-layer.value": data.draw(values["layer"]),
    }
    output = data.draw(
        st.sampled_from(["fmap-note.children", "fmap-zoom.figure", "unit-guided.children", "attr-layer-box"])
    )
    run_callback(app, client, errors, output, common, changed="selected.data")


@FUZZ
@given(data=st.data())
def test_the_routes_a_page_reads(app, client, errors, values, data):
    """The selected image's card and the feature-map strips, asked for by URL with anything as their arguments (an
    argument is text in a URL: the page's values as it writes them, and any text)."""
    state = app.layerscope_state
    text = st.text(max_size=24)
    image = values["image"].map(str) | text
    seen = len(errors.records)
    if data.draw(st.booleans()):
        check(client.get("/" + SELECTED_ROUTE, query_string={"image": data.draw(image)}, headers=LOCAL), errors, seen)
    else:
        query = {
            "layer": data.draw(st.sampled_from(state.conv_layers) | values["layer"] | text),
            "scale": data.draw(st.sampled_from(["channel", "layer"]) | text),
            "image": data.draw(image),
        }
        asked = {name: value for name, value in query.items() if data.draw(st.booleans()) or name != "scale"}
        check(client.get("/" + FMAP_ROUTE, query_string=asked, headers=LOCAL), errors, seen)


@FUZZ
@given(data=st.data())
def test_projections_and_brushing(app, client, errors, values, data):
    panel = data.draw(st.sampled_from(ids.PANEL_IDS))
    view = {prop(ids.proj(part, panel), "value"): data.draw(values[kind]) for part, kind in _VIEW}
    selection = data.draw(values["selection"])
    figure, hover = prop(ids.proj("graph", MATCH), "figure") + "...", prop(ids.proj("hover-img", MATCH), "src")
    output = data.draw(st.sampled_from([figure, prop(ids.proj("method", MATCH), "options"), "gallery-brushed", hover]))
    hovered = prop(ids.proj("hovered", panel), "data")
    inputs = {**view, "selection.data": selection, hovered: data.draw(values["index"])}
    # the brushed points: the page turns a brush into the selection itself; the strip above the gallery checks it
    changed = {"gallery-brushed": "selection.data", hover: hovered}.get(output)
    run_callback(app, client, errors, output, inputs, changed=changed, match={"panel": panel})


@FUZZ
@given(data=st.data())
def test_gallery_groups_and_panels(app, client, errors, values, data):
    groups = data.draw(
        st.dictionaries(values["name"].filter(lambda v: isinstance(v, str)), values["selection"], max_size=3) | odd
    )
    inputs = {
        "gallery-digit.value": data.draw(values["index"]),
        "gallery-sort.value": data.draw(st.sampled_from(["confidence", "index", "worst"]) | odd),
        "gallery-page.data": data.draw(values["index"]),
        "gallery-filter.data": data.draw(
            st.none() | st.fixed_dictionaries({"true": values["index"], "pred": values["index"]}) | odd
        ),
        "group-save.n_clicks": 1,
        "group-quick-add.n_clicks": 1,
        "group-name.value": data.draw(values["name"]),
        "group-quick-kind.value": data.draw(st.sampled_from(["true", "wrong-as"]) | odd),
        "group-quick-class.value": data.draw(values["index"]),
        "selection.data": data.draw(values["selection"]),
        "groups.data": groups,
        "panels.data": data.draw(st.lists(values["activation_layer"], max_size=3) | odd),
        "rows.data": data.draw(st.lists(values["row"], max_size=3) | odd),
        "explain.data": data.draw(st.none() | values["index"]),
        "add-button.n_clicks": 1,
        "panel-open.n_clicks": 1,
        "panel-layer.value": data.draw(values["activation_layer"]),
    }
    output, changed = data.draw(
        st.sampled_from(
            [
                ("gallery-body.children", None),
                ("groups.data", "group-save.n_clicks"),
                ("groups.data", "group-quick-add.n_clicks"),
                ("group-list.children", None),
                ("panel-area.children", None),
                (prop({"type": ids.PANEL_BODY, "layer": MATCH}, "children"), None),
                ("rows.data...explain", "add-button.n_clicks"),
                ("panels.data", "panel-open.n_clicks"),
                ("gallery-brushed.children", None),
            ]
        )
    )
    if output.startswith("rows.data"):
        inputs["selected.data"] = data.draw(values["image"])
    layer = data.draw(values["activation_layer"])  # the panel a pattern-matching callback serves
    inputs[prop({"type": ids.PANEL_SORT, "layer": layer}, "value")] = data.draw(st.sampled_from(PANEL_SORTS) | odd)
    inputs[prop({"type": ids.PANEL_SORT, "layer": layer}, "id")] = data.draw(
        st.just({"type": ids.PANEL_SORT, "layer": layer}) | odd
    )
    run_callback(app, client, errors, output, inputs, changed=changed, match={"layer": layer})


@FUZZ
@given(data=st.data())
def test_unit_card_and_network(app, client, errors, values, data):
    inputs = {
        "unit-layer.value": data.draw(values["activation_layer"]),
        "unit-index.value": data.draw(values["index"]),
        "unit.data": data.draw(values["unit"]),
        "selected.data": data.draw(values["image"]),
        "net-expand.value": data.draw(st.lists(values["layer"], max_size=2) | odd),
        "net-edges.value": data.draw(st.sampled_from([0, 3, 12, 13, -1]) | odd),
        "net-threshold.value": data.draw(st.sampled_from([0.0, 0.5, 0.9, 2.0]) | odd),
        "net-color.value": data.draw(st.sampled_from(["image", "selection", "none", "x"]) | odd),
        "selection.data": data.draw(values["selection"]),
        "abl-store.data": data.draw(st.lists(values["ablation"], max_size=2) | odd),
        "net-graph.clickData": {"points": [{"customdata": data.draw(st.lists(odd, max_size=3) | odd)}]},
    }
    output, changed = data.draw(
        st.sampled_from(
            [
                ("unit.data", "unit-index.value"),
                ("unit.data", "unit-layer.value"),
                ("unit.data", "net-graph.clickData"),
                ("unit-title.children", None),
                ("unit-topk.children", None),
                ("net-graph.figure...net-info", None),
                ("net-expand.value", None),
                ("abl-nodes.data", None),
            ]
        )
    )
    run_callback(app, client, errors, output, inputs, changed=changed)


@FUZZ
@given(data=st.data())
def test_switching_units_off(app, client, errors, values, data):
    trigger = data.draw(st.sampled_from(["abl-add", "unit-ablate", "abl-click", "net-graph"]))
    inputs = {
        "abl-add.n_clicks": 1,
        "unit-ablate.n_clicks": 1,
        "abl-click.data": data.draw(
            st.fixed_dictionaries({"layer": values["activation_layer"], "unit": values["index"]}) | odd
        ),
        "net-graph.clickData": {"points": [{"customdata": data.draw(st.lists(odd, max_size=3) | odd)}]},
        "abl-layer.value": data.draw(values["activation_layer"]),
        "abl-units.value": data.draw(values["units"]),
        "abl-scale.value": data.draw(st.sampled_from([0, 0.5, -2, 1e400]) | odd),
        "unit.data": data.draw(values["unit"]),
        "abl-mode.value": ["on"],
        "abl-store.data": data.draw(st.lists(values["ablation"], max_size=2) | odd),
    }
    changed = {"net-graph": "net-graph.clickData", "abl-click": "abl-click.data"}.get(trigger, f"{trigger}.n_clicks")
    run_callback(app, client, errors, "abl-store.data", inputs, changed=changed)
    run_callback(app, client, errors, "abl-list.children", inputs)
    run_callback(app, client, errors, "abl-image.children", {**inputs, "selected.data": data.draw(values["image"])})


@FUZZ
@given(data=st.data())
def test_drawing_callbacks(app, client, errors, values, data):
    stroke = st.lists(st.lists(odd | st.floats(0, 1), min_size=2, max_size=2), max_size=5)
    inputs = {
        "draw-strokes.data": data.draw(
            st.fixed_dictionaries({"strokes": st.lists(stroke, max_size=2) | odd, "version": values["index"]}) | odd
        ),
        "selected.data": data.draw(values["image"]),
        "draw-before.data": data.draw(values["image"]),
        "draw-version.data": data.draw(values["index"]),
        "draw-keep.n_clicks": 1,
        "rows.data": data.draw(st.lists(values["row"], max_size=3) | odd),
        **{
            prop(ids.proj(part, p), "value"): data.draw(values[kind]) for p in ids.PANEL_IDS for part, kind in _VIEW[:2]
        },
        "draw-placed.children": data.draw(odd),
    }
    output = data.draw(
        st.sampled_from(["draw-version.data", "rows.data@", "draw-placed.children", "draw-neighbours.children"])
    )
    if output == "rows.data@":  # "Keep as instance" (its output has a hash: allow_duplicate)
        output = next(k for k in app.callback_map if k.startswith("..rows.data@")).lstrip(".")
    run_callback(app, client, errors, output, inputs)


@FUZZ
@given(
    strokes=st.lists(st.lists(st.lists(odd | st.floats(), max_size=3), max_size=6), max_size=3) | odd,
    version=st.integers(0, 2**53 - 1) | st.sampled_from([-1, 2**53, 10**30, True, "1", None, 1.5]) | odd,
    extra=st.dictionaries(st.sampled_from(["figure", "panels", "maps"]), odd, max_size=3),
    panels=st.lists(st.fixed_dictionaries({"layer": st.sampled_from(["fc2", "conv1", "x"]), "order": odd}), max_size=2),
)
def test_draw_route(app, client, errors, strokes, version, extra, panels):
    seen = len(errors.records)
    body = {"strokes": strokes, "version": version, **extra}
    if "panels" not in extra:
        body["panels"] = panels
    response = client.post("/" + ROUTE, json=body, headers=LOCAL)
    check(response, errors, seen)
    assert response.status_code in (200, 400)
    if response.status_code == 200:
        answer = response.get_json()
        assert answer["version"] == version
