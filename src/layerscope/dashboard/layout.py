"""The page: a header, the selection sidebar and the views (views.py), each made of its features' own pieces (the
projection panels, the gallery, groups, activation panels, the network, Draw, Intervene), and the page's stores."""

from __future__ import annotations

from typing import Any

from dash import dcc, html

from layerscope.dashboard import figures, ids, views
from layerscope.dashboard.activations import activations_card
from layerscope.dashboard.compare_card import compare_card
from layerscope.dashboard.components import png_config
from layerscope.dashboard.draw import draw_layout
from layerscope.dashboard.gallery import confusion_card, gallery_card
from layerscope.dashboard.groups import groups_card
from layerscope.dashboard.inside import inside_layout
from layerscope.dashboard.interventions import interventions_layout
from layerscope.dashboard.projection import default_views, opens_waiting, projection_panel
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.timeline_card import has_snapshots, timeline_card


def _header(state: DashboardState) -> html.Header:
    """Run, dataset, model and accuracy; the views; a search box that selects an image by index or name."""
    m = state.run.manifest
    accuracy = m.get("metrics", {}).get("test_accuracy")
    model = m["model"]["class"].split(":")[-1] if state.has_model else f"from {m['source']['kind']} (no model)"
    facts = [m["dataset"]["name"], f"{m['dataset']['n_images']:,} images", model]
    if accuracy is not None:
        facts.append(f"{'test ' if state.has_model else ''}accuracy {accuracy:.2%}")
    nav = html.Nav(
        [
            html.Button(title, id=ids.nav(view), className="tab", title=hint, n_clicks=0)
            for view, title, hint in views.shown(state.has_model)
        ],
        className="tabs",
    )
    search = html.Div(
        [
            dcc.Input(
                id=ids.SEARCH,
                type="search",
                placeholder="image # or name",
                debounce=True,
                className="text search",
                autoComplete="off",
            ),
            html.Div(id=ids.SEARCH_ERROR, className="search-error"),
        ],
        className="search-box",
    )
    run_name: list[Any] = ["Run ", html.Strong(state.run.path.name)]
    if state.compare is not None:
        run_name += [" against ", html.Strong(state.compare.run.path.name)]
    # the training snapshot the views show, once the timeline's slider is moved (timeline_card.py)
    run_name.append(html.Span(id=ids.TL_BADGE, className="tl-badge"))
    return html.Header(
        [
            html.Div(
                [
                    html.H1("layerscope"),
                    html.Div(
                        [
                            html.Div(run_name, className="run-name"),
                            html.Div(" · ".join(facts), className="facts"),
                        ],
                        className="subtitle",
                        title=f"Run {state.run.path.name}: " + " · ".join(facts),
                    ),
                ],
                className="brand",
            ),
            nav,
            search,
        ]
    )


def _sidebar(state: DashboardState) -> html.Aside:
    """The selected image, its prediction and what can be done with it: on every view."""
    actions = [
        html.Button("Add to activation panels", id=ids.ADD_BUTTON, className="btn"),
        html.Button("Explain misclassification", id=ids.EXPLAIN_BUTTON, className="btn warn", disabled=True),
    ]
    if state.has_model:
        actions += [
            html.Button(
                "Draw over",
                id=ids.DRAW_OVER,
                className="btn",
                disabled=bool(state.drawing_off),
                title=state.drawing_off or "draw on this image and see what the network makes of it",
            ),
            html.Button("Attributions", id=ids.GOTO_ATTRIBUTION, className="btn", title="what the decision rests on"),
            html.Button("Switch units off", id=ids.GOTO_ABLATION, className="btn", title="ablation on the test set"),
        ]
    return html.Aside(
        [
            html.H3("Selected image"),
            # filled by the page (assets/layerscope.js showSelected, from sidebar.selected_card), not by callbacks
            html.Img(id=ids.PREVIEW_IMAGE, className="preview-img"),
            html.Div(id=ids.PREVIEW_CAPTION, className="caption"),
            dcc.Graph(
                id=ids.PREVIEW_PROBS,
                figure=figures.probability_frame(state.class_names),
                config=png_config("prediction"),
                className="probs",
            ),
            html.Div(actions, className="buttons"),
            html.Div(
                "← → step through the gallery · Esc clears the brush · the address bar keeps the view: copy it to "
                "share or come back",
                className="hint keys",
            ),
        ],
        className="sidebar",
        id=ids.SIDEBAR,
    )


def view_body(state: DashboardState, name: str) -> list[Any]:
    """The components of view ``name``: the Explore view's come with the page, the others' the first time the view
    opens (views.laid_out_with, workspace.lay_out)."""
    if name == "explore":
        (first, method_a), (second, method_b) = default_views(state)
        if state.compare is not None:  # Run B beside Run A, each on its deepest hidden layer
            second, method_b = default_views(state.compare)[0]
            panels = [
                projection_panel(state, "a", first, method_a, f"Run A · {state.run.path.name}"),
                projection_panel(state.compare, "b", second, method_b, f"Run B · {state.compare.run.path.name}"),
            ]
        else:
            panels = [projection_panel(state, "a", first, method_a), projection_panel(state, "b", second, method_b)]
        projections = html.Div(
            panels, className="row two projections" + (" with-timeline" if has_snapshots(state) else "")
        )
        below = [gallery_card(state), html.Div([confusion_card(state), groups_card(state)], className="stack")]
        extra = [timeline_card(state)] if has_snapshots(state) else []
        extra += [compare_card(state)] if state.compare is not None else []
        return [projections, *extra, html.Div(below, className="row explore-below")]
    if name == "activations":
        return [activations_card(state)]
    if name == "network":
        return inside_layout(state)
    if name == "draw":
        return draw_layout(state)
    if name == "intervene":
        return interventions_layout(state)
    raise ValueError(f"no view {name!r}: the views are {', '.join(views.NAMES)}")


def _waiting(name: str) -> html.Div:
    """What a view shows until its components arrive (a moment, the first time it opens)."""
    title = next(title for view, title, _ in views.VIEWS if view == name)
    return html.Div(f"Opening the {title} view…", className="view-waiting")


def build_layout(state: DashboardState) -> html.Div:
    first = default_views(state)[0][0]
    stores = [
        dcc.Store(id=ids.SELECTED, data=0),
        # what a visitor builds survives a reload of the page (sessionStorage: this tab's, not another's)
        dcc.Store(id=ids.ROWS, data=[], storage_type="session"),
        dcc.Store(id=ids.PANELS, data=[first] if first in state.activation_layers else [], storage_type="session"),
        dcc.Store(id=ids.GROUPS, data={}, storage_type="session"),
        dcc.Store(id=ids.PANEL_ORDERS, data={}, storage_type="session"),
        # a store that starts empty is given no data at all: given None, dcc.Store "restores" undefined over it as it
        # mounts, a change that sets off every callback that takes it as an Input (requests for nothing at page open)
        dcc.Store(id=ids.SELECTION),
        dcc.Store(id=ids.SELECTION_ORIGIN),
        dcc.Store(id=ids.HIGHLIGHT_DONE),
        dcc.Store(id=ids.DBLCLICK),
        dcc.Store(id=ids.EXPLAIN),
        dcc.Store(id=ids.GALLERY_FILTER),
        dcc.Store(id=ids.GALLERY_PAGE, data=0),
        dcc.Store(id=ids.VIEW, data=views.DEFAULT),
        dcc.Store(id=ids.VIEW_WANTED),
        dcc.Store(id=ids.VIEW_LOADED, data=[views.DEFAULT]),
        dcc.Store(id=ids.UNIT_ASKED),  # the unit an address names, for the unit card once it is laid out
        dcc.Store(id=ids.SNAPSHOT),  # the training snapshot shown (timeline_card.py); absent: the Run as trained
        *views.gate_stores(state.has_model),
        dcc.Store(id=ids.ADDRESS),  # the page's state as a query string (address.py), for the URL
        dcc.Store(id=ids.ADDRESS_IN),  # the URL's query string at page open and on back/forward
        dcc.Store(id=ids.MARKED),
        dcc.Store(id=ids.ADDRESS_DONE),
        dcc.Store(id=ids.ADDRESS_OPENED),
        dcc.Store(id=ids.VIEW_SHOWN),
        dcc.Interval(id=ids.JOBS_INTERVAL, interval=1000, disabled=not opens_waiting(state)),
    ]
    return html.Div(
        [
            _header(state),
            # what a request could not do, one sentence (messages.on_callback_error); a click hides it
            html.Div(id=ids.PAGE_ERROR, className="page-error", role="alert"),
            html.Div(
                [
                    _sidebar(state),
                    html.Main(
                        [
                            html.Section(
                                view_body(state, name) if name == views.DEFAULT else [_waiting(name)],
                                id=ids.view(name),
                                className="view active" if name == views.DEFAULT else "view",
                            )
                            for name in views.NAMES
                        ]
                    ),
                ],
                className="workspace",
            ),
            *stores,
        ],
        className="page",
    )
