"""The gallery: one page of thumbnails, a digit's correct images (its average first) and its misclassified ones, or
the images of a confusion cell. The page opens with the first page in its layout (no request to wait for); the
gallery's callback builds the others."""

from __future__ import annotations

from typing import Any

from dash import Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate

from layerscope.analysis import confusion_cell
from layerscope.analysis import gallery as gallery_indices
from layerscope.dashboard import figures, ids
from layerscope.dashboard.checks import check_choice, check_int, check_selection, first_point
from layerscope.dashboard.components import card, png_config
from layerscope.dashboard.state import DashboardState
from layerscope.dashboard.wiring import Callbacks
from layerscope.errors import LayerscopeError
from layerscope.names import check_index

__all__ = [
    "FIRST",
    "PAGE",
    "SORTS",
    "callbacks",
    "confusion_card",
    "gallery_card",
    "gallery_key",
    "gallery_page",
    "thumb",
]

PAGE = 60  # thumbnails per gallery page
# the most misclassified images shown under a digit's page: an untrained network on a million images gets 90,000 of
# a digit wrong (a confusion cell pages through them all)
WRONG_SHOWN = 3 * PAGE
SORTS = ("confidence", "uncertain", "index")
FIRST = {"digit": 0, "sort": "confidence", "page": 0, "filter": None}  # what the page opens on

callbacks = Callbacks()


def thumb(state: DashboardState, key: int | str, selected: Any, title: str) -> html.Img:
    classes = "thumb selected" if str(key) == str(selected) else "thumb"
    return html.Img(src=state.thumbnail(key), id={"type": ids.THUMB, "key": key}, className=classes, title=title)


def gallery_key(state: DashboardState, digit: Any, sort: Any, page: Any, filt: Any) -> dict[str, Any]:
    """The page asked for, checked: {"digit", "sort", "page", "filter"} (a confusion cell {"true", "pred"} or None)."""
    digit = check_index(digit, len(state.class_names), "digit")
    sort = check_choice(sort, SORTS, "gallery order")
    page = check_int(page, 0, 2**31, "gallery page") if page is not None else 0
    return {"digit": digit, "sort": sort, "page": page, "filter": check_cell(state, filt)}


def check_cell(state: DashboardState, filt: Any) -> dict[str, int] | None:
    """The confusion cell the gallery is filtered by, {"true", "pred"}, checked; None for no filter."""
    if not filt:
        return None
    if not isinstance(filt, dict):
        raise LayerscopeError("the gallery's filter is not a confusion cell; click a cell again.")
    return {
        "true": check_index(filt.get("true"), len(state.class_names), "true class"),
        "pred": check_index(filt.get("pred"), len(state.class_names), "predicted class"),
    }


def _paged(state: DashboardState, key: dict[str, Any]) -> tuple[Any, Any]:
    """What gallery ``key`` pages through (a confusion cell's images, or a digit's correctly classified ones) and,
    for a digit, its misclassified images, shown under every page."""
    cell = key["filter"]
    if cell:
        members = _members(state, cell)
        return members, members[:0]
    return gallery_indices(state.run, int(key["digit"]), key["sort"])


def _pages(count: int) -> int:
    return max(1, -(-count // PAGE))  # one at least, also when there is nothing to show


def _members(state: DashboardState, cell: dict[str, int]) -> Any:
    return confusion_cell(state.labels, state.predicted, state.split, cell["true"], cell["pred"])


def page_count(state: DashboardState, key: dict[str, Any]) -> int:
    """How many pages gallery ``key`` has."""
    return _pages(len(_paged(state, key)[0]))


def gallery_page(state: DashboardState, key: dict[str, Any], selected: Any) -> tuple[list[Any], str]:
    """The thumbnails of gallery page ``key`` (`gallery_key`) and the line that says where it is."""
    cell = key["filter"]
    paged, wrong = _paged(state, key)
    pages = _pages(len(paged))
    page = min(key["page"], pages - 1)
    if cell:
        t, p = cell["true"], cell["pred"]
        members = paged
        shown = members[page * PAGE : (page + 1) * PAGE]
        title = f"true {state.class_names[t]}, predicted {state.class_names[p]} (test set)"
        body = [
            html.Div(title, className="row-title"),
            html.Div([thumb(state, int(i), selected, state.name(int(i))) for i in shown], className="thumbs"),
        ]
        return body, f"page {page + 1} / {pages} · {len(members):,} images"
    digit = key["digit"]
    correct = paged
    shown = correct[page * PAGE : (page + 1) * PAGE]
    name = state.class_names[int(digit)]
    first = [thumb(state, f"mean:{int(digit)}", selected, f"average {name}")] + [
        thumb(state, int(i), selected, f"{state.name(int(i))} · {state.confidence[i]:.1%}") for i in shown
    ]
    second = [
        thumb(state, int(i), selected, f"{state.name(int(i))} → {state.class_names[state.predicted[i]]}")
        for i in wrong[:WRONG_SHOWN]
    ]
    more = (
        f" (the first {WRONG_SHOWN}: a cell of the confusion matrix pages through the test set's)"
        if len(wrong) > WRONG_SHOWN
        else ""
    )
    body = [
        html.Div(f"correctly classified {name} (first: the average {name})", className="row-title"),
        html.Div(first, className="thumbs"),
        html.Div(f"misclassified {name}: {len(wrong):,}{more}", className="row-title"),
        html.Div(second or [html.Span("none", className="hint")], className="thumbs wrong"),
    ]
    return body, f"page {page + 1} / {pages} · {len(correct):,} correct"


def gallery_card(state: DashboardState) -> html.Div:
    """The gallery's card, its first page laid out (no request to wait for at page open)."""
    first_page, first_info = gallery_page(state, FIRST, None)  # at page open, without a request
    return card(
        "Gallery",
        html.Div(
            [
                dcc.RadioItems(
                    [{"label": name, "value": k} for k, name in enumerate(state.class_names)],
                    0,
                    id=ids.GALLERY_DIGIT,
                    inline=True,
                    className="digits",
                ),
                dcc.Dropdown(
                    [
                        {"label": "most confident first", "value": "confidence"},
                        {"label": "least confident first", "value": "uncertain"},
                        {"label": "dataset order", "value": "index"},
                    ],
                    "confidence",
                    id=ids.GALLERY_SORT,
                    clearable=False,
                    className="ctl wide",
                ),
                html.Button("‹", id=ids.GALLERY_PREV, className="btn small", title="previous page"),
                html.Span(first_info, id=ids.GALLERY_INFO, className="page-info"),
                html.Button("›", id=ids.GALLERY_NEXT, className="btn small", title="next page"),
                html.Button("Clear filter", id=ids.GALLERY_CLEAR_FILTER, className="btn small"),
            ],
            className="controls",
        ),
        html.Div(id=ids.GALLERY_BRUSHED, className="gallery"),
        html.Div(first_page, id=ids.GALLERY_BODY, className="gallery"),
        dcc.Store(id=ids.GALLERY_SHOWN, data=FIRST),  # the page the gallery shows
        html.Div(
            "Click selects; double-click (or 'Add to activation panels') adds the image to the panels.",
            className="hint",
        ),
        class_name="gallery-card",
    )


def confusion_card(state: DashboardState) -> html.Div:
    """The test set's confusion matrix, drawn with the page; a click on a cell lists its images."""
    return card(
        "Confusion matrix (test set)",
        dcc.Graph(
            id=ids.CONFUSION,
            figure=figures.confusion_figure(state.confusion, state.class_names),
            config=png_config("confusion-matrix"),
        ),
        html.Div("Click a cell to list its images in the gallery and highlight them.", className="hint"),
        class_name="confusion-card",
    )


def _brushed_row(state: DashboardState, selection: list[int] | None, selected: Any) -> list[Any]:
    """The first images of the brushed selection, above the gallery."""
    if not selection:
        return []
    shown = selection[:PAGE]
    title = f"brushed in a projection: {len(selection):,} images" + (
        f" (first {PAGE})" if len(selection) > PAGE else ""
    )
    thumbs = [thumb(state, int(i), selected, state.name(int(i))) for i in shown]
    return [html.Div(title, className="row-title"), html.Div(thumbs, className="thumbs brushed-row")]


# -- a confusion cell fills the gallery with its images ---------------------------------------------------------
@callbacks.callback(
    Output(ids.GALLERY_FILTER, "data"),
    Output(ids.SELECTION, "data", allow_duplicate=True),
    Output(ids.SELECTION_ORIGIN, "data", allow_duplicate=True),
    Input(ids.CONFUSION, "clickData"),
    Input(ids.GALLERY_CLEAR_FILTER, "n_clicks"),
    prevent_initial_call=True,
)
def confusion_click(state: DashboardState, click: Any, _clear: Any) -> tuple[Any, Any, Any]:
    if ctx.triggered_id == ids.GALLERY_CLEAR_FILTER:
        return None, [], None
    point = first_point(click)
    if "x" not in point:
        raise PreventUpdate
    names = [str(n) for n in state.class_names]
    true = names.index(check_choice(point.get("y"), names, "true class"))
    pred = names.index(check_choice(point["x"], names, "predicted class"))
    members = confusion_cell(state.labels, state.predicted, state.split, true, pred)
    return {"true": true, "pred": pred}, members.tolist(), None


# -- gallery --------------------------------------------------------------------------------------------------
@callbacks.callback(
    Output(ids.GALLERY_PAGE, "data"),
    Input(ids.GALLERY_PREV, "n_clicks"),
    Input(ids.GALLERY_NEXT, "n_clicks"),
    Input(ids.GALLERY_DIGIT, "value"),
    Input(ids.GALLERY_SORT, "value"),
    Input(ids.GALLERY_FILTER, "data"),
    State(ids.GALLERY_PAGE, "data"),
    prevent_initial_call=True,
)
def page(state: DashboardState, _p: Any, _n: Any, digit: Any, sort: Any, filt: Any, current: Any) -> int:
    """The page "‹" and "›" move to, never past the last (a new digit, order or filter starts again at the first)."""
    current = current if isinstance(current, int) and not isinstance(current, bool) and current >= 0 else 0
    if ctx.triggered_id not in (ids.GALLERY_PREV, ids.GALLERY_NEXT):
        return 0
    try:
        last = page_count(state, gallery_key(state, digit, sort, 0, filt)) - 1
    except LayerscopeError:  # the gallery itself says what is wrong
        raise PreventUpdate from None
    step = -1 if ctx.triggered_id == ids.GALLERY_PREV else 1
    return max(0, min(current, last) + step) if step < 0 else min(last, current + step)


@callbacks.callback(
    Output(ids.GALLERY_BODY, "children"),
    Output(ids.GALLERY_INFO, "children"),
    Output(ids.GALLERY_SHOWN, "data"),
    Input(ids.GALLERY_DIGIT, "value"),
    Input(ids.GALLERY_SORT, "value"),
    Input(ids.GALLERY_PAGE, "data"),
    Input(ids.GALLERY_FILTER, "data"),
    State(ids.SELECTED, "data"),
    State(ids.GALLERY_SHOWN, "data"),
    prevent_initial_call=True,  # its first page comes with the page (gallery_card)
)
def gallery(state: DashboardState, digit: Any, sort: Any, page: Any, filt: Any, selected: Any, shown: Any) -> Any:
    try:
        key = gallery_key(state, digit, sort, page, filt)
    except LayerscopeError as e:
        return [html.Div(str(e), className="bad")], "", None
    if key == shown:  # the page it shows (the first, laid out with the page): the ring follows the selection
        raise PreventUpdate
    body, info = gallery_page(state, key, selected)
    return body, info, key


@callbacks.callback(
    Output(ids.GALLERY_BRUSHED, "children"),
    Input(ids.SELECTION, "data"),
    Input(ids.GALLERY_FILTER, "data"),
    State(ids.SELECTED, "data"),
    prevent_initial_call=True,  # the page opens with nothing brushed
)
def brushed_strip(state: DashboardState, selection: Any, cell: Any, selected: Any) -> Any:
    """The brushed images above the gallery; none while a confusion cell fills the gallery with these very images (a
    lasso made since is listed)."""
    chosen = check_selection(state, selection)
    cell = check_cell(state, cell)
    if cell is not None and chosen is not None and [int(i) for i in _members(state, cell)] == chosen:
        return []
    return _brushed_row(state, chosen, selected)
