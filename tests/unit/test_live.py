"""The Draw panel's fast path (dashboard/live.py) on the tiny trained Run: what one request sets and answers."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from layerscope.dashboard import create_app, figures
from layerscope.dashboard.live import ROUTE, live_update
from layerscope.dashboard.state import LIVE

LINE = [[[0.5, 0.15], [0.5, 0.5], [0.5, 0.85]]]  # a vertical stroke
CIRCLE = [[[0.5 + 0.3 * np.cos(a), 0.5 + 0.35 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 24)]]


@pytest.fixture
def app(tiny_run):
    return create_app(tiny_run)


def png_size(uri: str) -> tuple[int, int]:
    return Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).size


def test_a_request_sets_the_drawing_and_answers_what_the_page_shows(app):
    state = app.layerscope_state
    units = state.run.layer("fc2").dims
    order = list(range(units))[::-1]
    body = {
        "strokes": LINE,
        "version": 1,
        "panels": [{"layer": "fc2", "order": order, "lo": 0.0, "hi": 1.0}, {"layer": "nope"}],
        "maps": [{"layer": name, "scale": "channel"} for name in state.conv_layers] + [{"layer": "fc2"}],
    }
    answer = live_update(state, body)
    probs = state.drawing_probs[LIVE]
    k = int(np.argmax(probs))
    assert answer["version"] == 1 and "stale" not in answer and "figure" not in answer
    assert answer["bars"]["x"] == pytest.approx(probs.tolist())
    assert answer["bars"]["color"][k] != answer["bars"]["color"][(k + 1) % len(probs)]  # the prediction stands out
    assert answer["caption"] == f"predicted {state.class_names[k]} ({probs[k]:.1%})"
    assert png_size(answer["preview"]) == (112, 112) and png_size(answer["large"]) == (224, 224)
    # the panel row: one colour per unit, in the panel's order and range; an unknown layer is left out
    values = state.drawing_values(LIVE, "fc2")
    assert list(answer["panels"]) == ["fc2"] and len(answer["panels"]["fc2"]) == units
    assert answer["panels"]["fc2"] == figures.viridis(values[order], 0.0, 1.0)
    assert len(set(answer["panels"]["fc2"])) > 1
    # a strip per conv layer: its channels side by side; fc2 has no maps
    fmaps = state.feature_maps(LIVE)
    assert set(answer["maps"]) == set(state.conv_layers)
    for name, strip in answer["maps"].items():
        c, h, w = fmaps[name].shape
        assert png_size(strip) == (c * w, h)


def test_older_strokes_do_not_replace_newer_ones(app):
    state = app.layerscope_state
    live_update(state, {"strokes": CIRCLE, "version": 10})
    circle = state.drawings[LIVE].copy()
    assert live_update(state, {"strokes": LINE, "version": 9}) == {"version": 9, "stale": True}
    np.testing.assert_array_equal(state.drawings[LIVE], circle)
    # the same strokes, late (a request overtaken by the Dash callback that carried them): answered
    assert "bars" in live_update(state, {"strokes": CIRCLE, "version": 8})
    assert "bars" in live_update(state, {"strokes": LINE, "version": 11})
    assert not np.array_equal(state.drawings[LIVE], circle)
    # the same strokes again with a newer version (the Dash callback after the fast path): the outputs are kept
    outputs = state.drawing_outputs[LIVE]
    assert "bars" in live_update(state, {"strokes": LINE, "version": 12})
    assert state.drawing_outputs[LIVE] is outputs and state.live_version == 12
    # a cleared drawing is dropped
    assert live_update(state, {"strokes": [], "version": 13}) == {"version": 13, "empty": True}
    assert LIVE not in state.drawings


def test_the_whole_figure_when_the_card_has_no_bars_yet(app):
    answer = live_update(app.layerscope_state, {"strokes": LINE, "version": 100, "figure": True})
    assert answer["figure"]["data"][0]["type"] == "bar"


def test_the_route_answers_json_and_says_what_is_malformed(app):
    client = app.server.test_client()
    ok = client.post("/" + ROUTE, json={"strokes": LINE, "version": 1000})
    assert ok.status_code == 200 and ok.get_json()["version"] == 1000
    for bad in ([1, 2], {"strokes": LINE, "version": "soon"}):
        r = client.post("/" + ROUTE, json=bad)
        assert r.status_code == 400 and r.get_json()["error"]
    r = client.post("/" + ROUTE, json={"strokes": [[[0.5, 0.5]] * 30_000], "version": 1001})
    assert r.status_code == 400 and "more than 20,000 points" in r.get_json()["error"]
