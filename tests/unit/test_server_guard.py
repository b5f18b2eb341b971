"""The dashboard's server as an attacker meets it, through Flask's test client on the tiny trained Run: foreign Host
and Origin headers, oversized bodies, absurd stroke versions, and callbacks sent indices the page never offers."""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import time
from typing import Any

import pytest
from dash import ALL, MATCH

from layerscope.dashboard import create_app, ids, views
from layerscope.dashboard.checks import MAX_GROUP_MEMBERS
from layerscope.dashboard.guard import MAX_BODY, allowed_hosts, host_name
from layerscope.dashboard.live import ROUTE
from layerscope.dashboard.messages import UNEXPECTED
from layerscope.dashboard.sidebar import SELECTED_ROUTE
from layerscope.errors import LayerscopeError
from layerscope.run import Run
from tests.browser.conftest import served

UPDATE = "/_dash-update-component"
LOCAL = {"Host": "127.0.0.1:8050"}
LINE = [[[0.5, 0.15], [0.5, 0.5], [0.5, 0.85]]]  # a vertical stroke


@pytest.fixture(scope="module")
def app(tiny_run):
    return create_app(tiny_run)


@pytest.fixture(scope="module")
def client(app):
    return app.server.test_client()


def one_sentence(text: str) -> bool:
    """One line, ending in a full stop, with no other sentence end inside it (quoted values and "..." aside)."""
    text = text.strip()
    bare = re.sub(r"'[^']*'|\"[^\"]*\"|\.\.\.", "", text)
    return "\n" not in text and text.endswith(".") and len(re.findall(r"[.!?](?:\s|$)", bare)) <= 1


# every heavy callback's gate as the page sends it once its view was shown (a gate never opened stops its callback)
OPEN_GATES = {f"{ids.gate(name)}.data": 1 for name in views.GATES}


def prop(ident: str | dict[str, Any], name: str) -> str:
    """ "id.property" as Dash writes it, for a pattern-matching id too: prop(ids.proj("graph", "a"), "figure") ->
    '{"panel":"a","type":"proj-graph"}.figure' (MATCH and ALL as ["MATCH"], ["ALL"])."""
    if isinstance(ident, dict):
        wild = {k: ([str(v)] if v in (MATCH, ALL) else v) for k, v in ident.items()}
        ident = json.dumps(wild, sort_keys=True, separators=(",", ":"))
    return f"{ident}.{name}"


def _split_output(part: str) -> dict[str, Any]:
    if part.startswith("{"):  # a pattern-matching id, JSON
        end = part.rindex("}") + 1
        return {"id": json.loads(part[:end]), "property": part[end + 1 :]}
    ident, prop = part.split(".", 1)
    return {"id": ident, "property": prop}


def _concrete(dep: dict[str, Any], match: dict[str, Any]) -> dict[str, Any]:
    """A MATCH dependency as the renderer sends it: the id of the one component it stands for (``match``'s values)."""
    return {k: (match[k] if v == ["MATCH"] else v) for k, v in dep.items()}


def _matching(app, output: dict[str, Any], match: dict[str, Any]) -> Any:
    """A pattern-matching output as the renderer sends it: for an ALL in its id, one entry per component of the
    layout that matches, in the layout's order; for a MATCH, the one component ``match`` names."""
    pattern = output["id"]
    if isinstance(pattern, dict) and ["MATCH"] in pattern.values():
        return {"id": _concrete(pattern, match), "property": output["property"]}
    if not isinstance(pattern, dict) or ["ALL"] not in pattern.values():
        return output
    found = []
    for component in app.layout._traverse():
        ident = getattr(component, "id", None)
        if isinstance(ident, dict) and ident.keys() == pattern.keys():
            if all(v == ["ALL"] or ident[k] == v for k, v in pattern.items()):
                found.append({"id": ident, "property": output["property"]})
    return found


def callback_body(
    app,
    output: str,
    values: dict[str, Any] | None = None,
    changed: str | None = None,
    match: dict[str, Any] | None = None,
) -> dict:
    """A ``/_dash-update-component`` body as dash-renderer sends it, for the callback whose output key starts with
    ``output`` (e.g. "preview-image.src"): every input and state from ``values`` ("id.property" -> value, ``prop``;
    for an ALL, the list of its matching components' entries), None where not given; a MATCH stands for the
    component ``match`` names (projection panel A by default); ``changed``: the "id.property" that triggered it (the
    first input by default)."""
    values = values or {}
    match = match or {"panel": "a"}
    key = next(k for k in app.callback_map if k.lstrip(".").startswith(output))
    spec = app.callback_map[key]

    def entry(dep: dict[str, Any]) -> Any:
        ident = dep["id"]
        if ident.startswith("{") and '["MATCH"]' in ident:
            concrete = _concrete(json.loads(ident), match)
            return {"id": concrete, "property": dep["property"], "value": values.get(prop(concrete, dep["property"]))}
        if ident.startswith("{") and '["ALL"]' in ident:
            return values.get(f"{ident}.{dep['property']}", [])
        concrete = json.loads(ident) if ident.startswith("{") else ident  # a dict id without wildcards: one component
        return {"id": concrete, "property": dep["property"], "value": values.get(f"{ident}.{dep['property']}")}

    parts = key[2:-2].split("...") if key.startswith("..") else [key]
    outputs = [_matching(app, _split_output(p), match) for p in parts]
    first = entry(spec["inputs"][0])
    first_name = (
        prop(first["id"], first["property"])
        if isinstance(first, dict)
        else prop(spec["inputs"][0]["id"], spec["inputs"][0]["property"])
    )
    return {
        "output": key,
        "outputs": outputs if key.startswith("..") else outputs[0],
        "inputs": [entry(d) for d in spec["inputs"]],
        "state": [entry(d) for d in spec["state"]],
        "changedPropIds": [changed or first_name],
    }


def update(client, body: Any, headers: dict[str, str] | None = None):
    return client.post(UPDATE, json=body, headers={**LOCAL, **(headers or {})})


def side_notice(response) -> str | None:
    """The sentence a failed callback put in the page's notice (messages.on_callback_error), if any."""
    side = (response.get_json() or {}).get("sideUpdate") or {}
    return (side.get("page-error") or {}).get("children")


# -- Host and Origin ------------------------------------------------------------------------------------------------
def test_a_foreign_host_is_refused_with_one_sentence(app, client):
    for request in (
        lambda h: client.get("/", headers=h),
        lambda h: client.post(UPDATE, json=callback_body(app, "gallery-brushed.children", {}), headers=h),
        lambda h: client.get("/" + SELECTED_ROUTE + "?image=0", headers=h),
        lambda h: client.post("/" + ROUTE, json={"strokes": LINE, "version": 1}, headers=h),
    ):
        response = request({"Host": "evil.example"})
        assert response.status_code == 403
        text = response.get_data(as_text=True)
        assert one_sentence(text) and "evil.example" in text and "--allow-host" in text
        assert request({"Host": "evil.example:8050"}).status_code == 403
        assert request({"Host": "127.0.0.1.evil.example"}).status_code == 403


def test_loopback_hosts_are_served_at_any_port(client):
    for host in ("127.0.0.1:8050", "localhost:61234", "LOCALHOST", "[::1]:8050", "127.0.0.1"):
        response = client.get("/", headers={"Host": host})
        assert response.status_code == 200, host
        assert b"_dash-config" in response.data


def test_allow_hosts_adds_a_team_servers_names(tiny_run):
    team = create_app(tiny_run, allow_hosts=["team.example", "10.0.0.5:8050"]).server.test_client()
    assert team.get("/", headers={"Host": "team.example"}).status_code == 200
    assert team.get("/", headers={"Host": "Team.Example.:8050"}).status_code == 200
    assert team.get("/", headers={"Host": "10.0.0.5:8050"}).status_code == 200
    assert team.get("/", headers={"Host": "127.0.0.1:8050"}).status_code == 200  # loopback stays
    assert team.get("/", headers={"Host": "evil.example"}).status_code == 403
    # the default app does not know the team's name
    assert create_app(tiny_run).server.test_client().get("/", headers={"Host": "team.example"}).status_code == 403


def test_allow_hosts_values_that_are_not_names_are_one_line_errors():
    for bad in ("a b", "http://x/", "x/y", "", ":80", "[::1", "::zz"):
        with pytest.raises(LayerscopeError, match="--allow-host") as caught:
            allowed_hosts(None, [bad])
        assert "\n" not in str(caught.value)
    assert host_name("[::1]:8050") == "::1" and host_name("LocalHost.") == "localhost"
    assert allowed_hosts("0.0.0.0", []) == allowed_hosts(None, [])  # every interface: no name of its own
    assert "192.168.1.5" in allowed_hosts("192.168.1.5", [])


def test_a_post_from_another_sites_page_is_refused(app, client):
    body = callback_body(app, "gallery-brushed.children", {"selection.data": [3]})
    assert update(client, body).status_code == 200  # no Origin: curl, tests
    assert update(client, body, {"Origin": "http://127.0.0.1:8050"}).status_code == 200  # the page itself
    for origin in (
        "http://evil.example",
        "http://127.0.0.1:9999",  # another local site
        "https://127.0.0.1:8050",  # another scheme is another origin
        "null",
        "file://",
        "http://[::1",
    ):
        response = update(client, body, {"Origin": origin})
        assert response.status_code == 403, origin
        assert one_sentence(response.get_data(as_text=True))
    draw = client.post("/" + ROUTE, json={"strokes": LINE, "version": 1}, headers={**LOCAL, "Origin": "http://x.y"})
    assert draw.status_code == 403
    # a GET is only read, from anywhere the Host allows
    assert client.get("/", headers={**LOCAL, "Origin": "http://evil.example"}).status_code == 200


def test_a_trusted_name_may_post_from_behind_a_proxy(tiny_run):
    app = create_app(tiny_run, allow_hosts=["team.example"])
    client = app.server.test_client()
    body = callback_body(app, "gallery-brushed.children", {"selection.data": [3]})
    # a proxy that rewrites Host to the local address keeps the browser's Origin
    assert update(client, body, {"Origin": "https://team.example"}).status_code == 200
    assert update(client, body, {"Origin": "http://evil.example"}).status_code == 403


# -- sizes ----------------------------------------------------------------------------------------------------------
def test_a_body_over_the_limit_is_refused(client):
    big = b'{"output": "' + b"x" * 20_000_000 + b'"}'
    response = client.post(UPDATE, data=big, content_type="application/json", headers=LOCAL)
    assert response.status_code == 413 and one_sentence(response.get_data(as_text=True))
    # declared, not sent: refused on the header alone
    response = client.post(
        UPDATE,
        data=b"{}",
        content_type="application/json",
        headers=LOCAL,
        environ_overrides={"CONTENT_LENGTH": str(10 * 2**30)},
    )
    assert response.status_code == 413 and one_sentence(response.get_data(as_text=True))
    # a body without a length (chunked) is cut off at the limit while it is read
    response = client.post(
        UPDATE,
        input_stream=io.BytesIO(big),
        content_type="application/json",
        headers=LOCAL,
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413 and one_sentence(response.get_data(as_text=True))
    assert MAX_BODY < 20_000_000


def test_the_largest_requests_of_the_page_fit_the_limit(app):
    """What the page sends at most, for all 70,000 MNIST images: a lasso over every point (the misclassified twice)
    beside the current selection, and the activation panels' callback with groups as large as they may get."""
    n = 70_000
    everything = list(range(n))
    brushed = {"pairs": [[i % 10, i // 10] for i in range(n)] + [[10, i] for i in range(n)], "selection": everything}
    groups = {f"group {g}": everything for g in range(MAX_GROUP_MEMBERS // n)}
    body = prop({"type": ids.PANEL_BODY, "layer": MATCH}, "children")
    values = {"groups.data": groups, "selection.data": everything}
    panels = callback_body(app, body, values, match={"layer": "fc2"})
    for body in (brushed, panels):
        size = len(json.dumps(body, separators=(",", ":")))
        assert size < MAX_BODY / 1.5, size  # with margin


def test_a_declared_huge_body_does_not_hold_the_server(app):
    """Over a real socket: the answer comes at once, though 10 GB were announced and never sent."""
    with served(app) as port, socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(
            f"POST {UPDATE} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {10 * 2**30}\r\n\r\n{{".encode()
        )
        answer = conn.recv(4096).decode("latin-1")
    assert answer.startswith("HTTP/1.1 413")


# -- the Draw route -------------------------------------------------------------------------------------------------
def draw(client, body: Any, raw: bytes | None = None):
    if raw is not None:
        return client.post("/" + ROUTE, data=raw, content_type="application/json", headers=LOCAL)
    return client.post("/" + ROUTE, json=body, headers=LOCAL)


def test_absurd_stroke_versions_are_refused_and_later_strokes_still_work(client):
    first = draw(client, {"strokes": LINE, "version": 1_000})
    assert first.status_code == 200 and "bars" in first.get_json()
    for response in (
        draw(client, {"strokes": LINE, "version": 10**30}),
        draw(client, None, raw=b'{"strokes": [], "version": 1e400}'),
        draw(client, {"strokes": LINE, "version": "x"}),
        draw(client, {"strokes": LINE, "version": True}),
        draw(client, {"strokes": LINE, "version": -1}),
        draw(client, {"strokes": LINE, "version": 2**53}),
        draw(client, {"strokes": LINE, "version": 1.5}),
        draw(client, {"strokes": LINE, "version": None}),
    ):
        assert response.status_code == 400
        error = response.get_json()["error"]
        assert one_sentence(error) and "version" in error
    # nothing above moved the version on: the next strokes of every visitor are answered, not "stale"
    for version in (1_001, 1_002):
        answer = draw(client, {"strokes": LINE if version % 2 else [], "version": version}).get_json()
        assert "stale" not in answer and answer["version"] == version


def test_malformed_drawings_are_400_with_one_sentence(client):
    for body in (
        [1, 2],
        {"strokes": LINE, "version": 2_000, "panels": "fc2"},
        {"strokes": LINE, "version": 2_001, "panels": [{"layer": "fc2", "order": ["a"]}]},
        {"strokes": LINE, "version": 2_002, "panels": [{"layer": "fc2", "lo": "x"}]},
        {"strokes": [[[0.5, 0.5]] * 20_001], "version": 2_003},
    ):
        response = draw(client, body)
        assert response.status_code == 400, body
        assert one_sentence(response.get_json()["error"])
    # points that are no numbers (NaN among them) are dropped, as draw.js never sends them
    answer = draw(client, None, raw=b'{"strokes": [[[NaN, 0.5], [0.5, 0.2], [0.5, 0.8]]], "version": 2004}')
    assert answer.status_code == 200 and "bars" in answer.get_json()


# -- callbacks sent values the page never offers --------------------------------------------------------------------
BAD_INDICES = [-1, 10**9, "abc", 2.5, True, None, [1], {"a": 1}, "mean:99", "draw:7"]


def selected_card(client, key: Any):
    """The selected image's card as the page asks for it (sidebar.py card_json): a key travels as URL text."""
    return client.get(
        "/" + SELECTED_ROUTE, query_string={"image": key if isinstance(key, str) else json.dumps(key)}, headers=LOCAL
    )


@pytest.mark.parametrize("bad", BAD_INDICES)
def test_the_preview_refuses_an_image_it_does_not_have(client, bad):
    response = selected_card(client, bad)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert re.search(r"out of range|not a whole number|no image", error) and one_sentence(error), error


def test_image_minus_one_does_not_show_the_last_image(app, client):
    last = app.layerscope_state.n - 1
    response = selected_card(client, -1)
    assert "image" not in response.get_json() and app.layerscope_state.name(last) not in response.get_data(as_text=True)
    assert selected_card(client, last).get_json()["name"] == app.layerscope_state.name(last)


@pytest.mark.parametrize("bad", [-1, 10**9, "abc"])
def test_every_view_of_the_selected_image_answers_without_a_500(app, client, bad):
    for output in (
        "fmap-note.children",
        "fmap-zoom.figure",
        "unit-guided.children",
        "attr-layer-box.style",
        "attr-sanity-area.children",
        "net-graph.figure",
        "abl-image.children",
    ):
        values = {
            **OPEN_GATES,
            "selected.data": bad,
            "fmap-scale.value": "channel",
            "unit.data": {"layer": "conv2", "unit": 0},
            "attr-method.value": "saliency",
            "attr-target.value": -1,
            "attr-sanity.value": ["on"],
            "net-edges.value": 3,
            "net-threshold.value": 0.0,
            "net-color.value": "image",
            "abl-store.data": [{"layer": "fc2", "units": [1], "scale": 0.0}],
        }
        response = update(client, callback_body(app, output, values, changed="selected.data"))
        assert response.status_code in (200, 204), output
        if response.status_code == 200:
            notice = side_notice(response)
            assert notice is None or not notice.startswith(UNEXPECTED), notice


@pytest.mark.parametrize(("index", "expected"), [(40, "conv2 unit 40 is out of range"), (-1, "out of range")])
def test_a_unit_the_layer_lacks_is_refused_not_made_unit_0(app, client, index, expected):
    body = callback_body(
        app,
        "unit.data",
        {"unit-layer.value": "conv2", "unit-index.value": index, "unit.data": {"layer": "conv2", "unit": 3}},
        changed="unit-index.value",
    )
    response = update(client, body)
    assert response.status_code == 200
    answer = response.get_json()["response"]
    assert "unit" not in answer and "unit-index" not in answer  # the card stays on unit 3
    assert expected in answer["unit-error"]["children"]
    assert one_sentence(answer["unit-error"]["children"])
    values = {"unit-layer.value": "conv2", "unit-index.value": 31, "unit.data": {"layer": "conv2", "unit": 3}}
    ok = update(client, callback_body(app, "unit.data", values, changed="unit-index.value"))
    assert ok.get_json()["response"]["unit"]["data"] == {"layer": "conv2", "unit": 31}


def test_the_units_box_shows_the_error_of_a_huge_range(app, client):
    for units, expected in (("0-100000000000", "at most"), ("0-1000", "out of range"), ("x", "whole numbers")):
        body = callback_body(
            app,
            "abl-store.data",
            {"abl-add.n_clicks": 1, "abl-layer.value": "fc2", "abl-units.value": units, "abl-scale.value": 0},
        )
        response = update(client, body)
        assert response.status_code == 200
        error = response.get_json()["response"]["abl-error"]["children"]
        assert expected in error and "\n" not in error


def test_a_malformed_callback_request_is_400_not_500(client):
    for body in ({}, {"output": "nope.children"}, {"output": "gallery-brushed.children", "inputs": 3}, [1]):
        response = update(client, body)
        assert response.status_code == 400, body
        assert one_sentence(response.get_data(as_text=True))
    response = client.post(UPDATE, data=b"{not json", content_type="application/json", headers=LOCAL)
    assert response.status_code == 400 and one_sentence(response.get_data(as_text=True))


# -- viewing never writes into the Run ------------------------------------------------------------------------------
def test_the_unit_card_computes_a_feature_visualisation_only_when_asked(tiny_run, tmp_path):
    # a copy of the Run: the feature visualisation asked for below is written into it
    run = Run(shutil.copytree(tiny_run.path, tmp_path / "run"))
    shutil.rmtree(run.path / "featurevis", ignore_errors=True)  # what other tests stored in the shared Run
    app = create_app(run)
    client = app.server.test_client()
    state = app.layerscope_state
    stored = run.path / "featurevis"
    values = {**OPEN_GATES, "unit.data": {"layer": "conv2", "unit": 5}, "selected.data": 0}
    for _ in range(2):  # the Network view opening on the unit, and a poll
        shown = update(client, callback_body(app, "unit-topk.children", values)).get_json()["response"]
        assert "Not computed yet" in json.dumps(shown["unit-featurevis"]["children"])
        assert shown["unit-featurevis-start"]["disabled"] is False
    assert state.unit_job("conv2", "unit 5") is None and not stored.exists()
    # the button starts it, in the background
    clicked = {**values, "unit-featurevis-start.n_clicks": 1}
    body = callback_body(app, "unit-topk.children", clicked, changed="unit-featurevis-start.n_clicks")
    shown = update(client, body).get_json()["response"]
    assert shown["unit-featurevis-start"]["disabled"] is True
    job = state.unit_job("conv2", "unit 5")
    deadline = time.monotonic() + 120
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.2)
    assert job.finished and job.error is None
    assert [p.name for p in stored.rglob("*.npz")] == ["5.npz"]
    shown = update(client, callback_body(app, "unit-topk.children", values)).get_json()["response"]
    assert "naive gradient ascent" in json.dumps(shown["unit-featurevis"]["children"])
    assert shown["unit-featurevis-start"]["disabled"] is True


def test_the_page_s_assets_are_kept_by_the_browser_under_addresses_that_change_with_them(client):
    page = client.get("/", headers={"Host": "127.0.0.1:8050"}).get_data(as_text=True)
    scripts = re.findall(r'src="(/assets/[^"]+\?m=[0-9.]+)"', page)
    assert any("plotly.min.js" in s for s in scripts) and any("session.js" in s for s in scripts)
    for address in scripts:
        with client.get(address, headers={"Host": "127.0.0.1:8050"}) as answer:
            assert answer.status_code == 200 and answer.cache_control.max_age == 365 * 24 * 3600, address
