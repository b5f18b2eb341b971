"""The page's layout against its callbacks. The views but Explore are laid out the first time they open (views.py),
so Dash is told not to check callbacks against the first layout; these tests check what it would have, against the
whole page, and what the renderer needs while some views are not laid out yet: a callback that can fire (one of its
outputs is there) finds every component it reads, or reads it as optional."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from dash._utils import split_callback_id

from layerscope.dashboard import app as dashboard_app
from layerscope.dashboard import ids, views
from layerscope.dashboard.layout import view_body
from layerscope.dashboard.state import DashboardState
from layerscope.interop import import_nn_data
from tests import nn_data


def _components(component: Any) -> Iterator[Any]:
    """Every Dash component under ``component``, itself included."""
    if isinstance(component, (list, tuple)):
        for child in component:
            yield from _components(child)
        return
    if not hasattr(component, "to_plotly_json"):
        return
    yield component
    for name in getattr(component, "_prop_names", []):
        value = getattr(component, name, None)
        if value is not None and name != "id":
            yield from _components(value)


def _ids(component: Any) -> set[str]:
    """Every id under ``component``: a string id as it is, a pattern id as "type:<its type>"."""
    found: set[str] = set()
    for node in _components(component):
        ident = getattr(node, "id", None)
        if isinstance(ident, dict):
            found.add(f"type:{ident.get('type')}")
        elif ident is not None:
            found.add(ident)
    return found


def _key(ident: str) -> str:
    """A dependency's id as `_ids` names it (pattern ids come JSON-encoded)."""
    if ident.startswith("{"):
        return f"type:{json.loads(ident)['type']}"
    return ident


def _outputs(callback: dict[str, Any]) -> list[str]:
    split = split_callback_id(callback["output"])
    return [_key(o["id"]) for o in (split if isinstance(split, list) else [split])]


def _reads(callback: dict[str, Any]) -> list[tuple[str, bool]]:
    """(id, may be missing) of each Input and State; a pattern (ALL, MATCH) may match nothing."""
    deps = [*callback["inputs"], *callback["state"]]
    return [(_key(d["id"]), d.get("allow_optional", False) or d["id"].startswith("{")) for d in deps]


@pytest.fixture(scope="module", params=["model", "no model"])
def page(request, tiny_run, tmp_path_factory) -> tuple[Any, DashboardState]:
    if request.param == "model":
        run = tiny_run
    else:
        where = tmp_path_factory.mktemp("nn-data")
        run = import_nn_data(nn_data.write(where / "NN_data.json"), where / "run")
    app = dashboard_app.create_app(run)
    return app, app.layerscope_state


def test_the_page_comes_with_the_explore_view_alone(page):
    app, state = page
    first = _ids(app.layout)
    explore = _ids(view_body(state, "explore"))
    assert explore <= first
    for name in views.NAMES:
        if name != views.DEFAULT:
            assert not (_ids(view_body(state, name)) - {None}) & first, name


def test_every_callback_finds_its_components_in_the_whole_page(page):
    app, state = page
    whole = _ids(app.layout).union(*(_ids(view_body(state, name)) for name in views.NAMES))
    for callback in app._callback_list:
        named = set(_outputs(callback)) | {ident for ident, _ in _reads(callback)}
        named = {ident for ident in named if not ident.startswith("type:")}  # a pattern may match what comes later
        assert named <= whole, (callback["output"], named - whole)


def test_a_callback_that_can_fire_never_waits_for_a_view_not_laid_out(page):
    """For every choice of views laid out so far: a callback with an output and an input in the page reads only
    components in the page (or optional ones). Otherwise the renderer says "A nonexistent object was used" and the
    callback is lost."""
    app, state = page
    first = _ids(app.layout)
    groups = list(dict.fromkeys(views.laid_out_with(name) for name in views.NAMES if name != views.DEFAULT))
    for k in range(len(groups) + 1):
        for laid_out in itertools.combinations(groups, k):
            present = first.union(*(_ids(view_body(state, name)) for group in laid_out for name in group))
            for callback in app._callback_list:
                if not any(o in present for o in _outputs(callback)):
                    continue  # the renderer leaves it until its outputs are laid out
                if not any(_key(i["id"]) in present for i in callback["inputs"]):
                    continue  # nothing there to fire it
                missing = [ident for ident, optional in _reads(callback) if not optional and ident not in present]
                assert not missing, (callback["output"], missing, laid_out)


def test_the_views_stores_of_the_page_are_outside_the_views(page):
    app, _ = page
    first = _ids(app.layout)
    assert {ids.VIEW, ids.VIEW_LOADED, ids.VIEW_WANTED, ids.SELECTED, ids.ROWS, ids.PANELS, ids.UNIT_ASKED} <= first


def _graphs(component: Any) -> list[Any]:
    """Every dcc.Graph under ``component``."""
    return [node for node in _components(component) if type(node).__name__ == "Graph"]


def test_every_figure_of_the_page_downloads_as_a_named_png(page):
    app, state = page
    graphs = _graphs(app.layout) + [g for name in views.NAMES for g in _graphs(view_body(state, name))]
    assert len(graphs) >= (3 if state.has_model else 2)
    for graph in graphs:
        config = graph.config or {}
        assert config.get("displayModeBar", True) is not False, graph.id
        buttons = config.get("modeBarButtons")
        assert buttons is None or "toImage" in [b for group in buttons for b in group], graph.id
        assert config["toImageButtonOptions"]["filename"], graph.id
