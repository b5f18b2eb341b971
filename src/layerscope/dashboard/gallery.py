"""The gallery: one page of thumbnails, a digit's correct images (its average first) and its misclassified ones, or
the images of a confusion cell. The page opens with the first page in its layout (no request to wait for); the
gallery's callback builds the others."""

from __future__ import annotations

from typing import Any

from dash import html

from layerscope.analysis import confusion_cell
from layerscope.analysis import gallery as gallery_indices
from layerscope.dashboard import ids
from layerscope.dashboard.checks import check_choice, check_int
from layerscope.dashboard.state import DashboardState
from layerscope.errors import LayerscopeError
from layerscope.names import check_index

__all__ = ["FIRST", "PAGE", "SORTS", "gallery_key", "gallery_page", "thumb"]

PAGE = 60  # thumbnails per gallery page
SORTS = ("confidence", "uncertain", "index")
FIRST = {"digit": 0, "sort": "confidence", "page": 0, "filter": None}  # what the page opens on


def thumb(state: DashboardState, key: int | str, selected: Any, title: str) -> html.Img:
    classes = "thumb selected" if str(key) == str(selected) else "thumb"
    return html.Img(src=state.thumbnail(key), id={"type": ids.THUMB, "key": key}, className=classes, title=title)


def gallery_key(state: DashboardState, digit: Any, sort: Any, page: Any, filt: Any) -> dict[str, Any]:
    """The page asked for, checked: {"digit", "sort", "page", "filter"} (a confusion cell {"true", "pred"} or None)."""
    digit = check_index(digit, len(state.class_names), "digit")
    sort = check_choice(sort, SORTS, "gallery order")
    page = check_int(page, 0, 2**31, "gallery page") if page is not None else 0
    if filt and not isinstance(filt, dict):
        raise LayerscopeError("the gallery's filter is not a confusion cell; click a cell again.")
    cell = None
    if filt:
        cell = {
            "true": check_index(filt.get("true"), len(state.class_names), "true class"),
            "pred": check_index(filt.get("pred"), len(state.class_names), "predicted class"),
        }
    return {"digit": digit, "sort": sort, "page": page, "filter": cell}


def gallery_page(state: DashboardState, key: dict[str, Any], selected: Any) -> tuple[list[Any], str]:
    """The thumbnails of gallery page ``key`` (`gallery_key`) and the line that says where it is."""
    page, cell = key["page"], key["filter"]
    if cell:
        t, p = cell["true"], cell["pred"]
        members = confusion_cell(state.labels, state.predicted, state.split, t, p)
        pages = max(1, -(-len(members) // PAGE))
        page = min(page, pages - 1)
        shown = members[page * PAGE : (page + 1) * PAGE]
        title = f"true {state.class_names[t]}, predicted {state.class_names[p]} (test set)"
        body = [
            html.Div(title, className="row-title"),
            html.Div([thumb(state, int(i), selected, state.name(int(i))) for i in shown], className="thumbs"),
        ]
        return body, f"page {page + 1} / {pages} · {len(members):,} images"
    digit = key["digit"]
    correct, wrong = gallery_indices(state.run, int(digit), key["sort"])
    pages = max(1, -(-len(correct) // PAGE))
    page = min(page, pages - 1)
    shown = correct[page * PAGE : (page + 1) * PAGE]
    name = state.class_names[int(digit)]
    first = [thumb(state, f"mean:{int(digit)}", selected, f"average {name}")] + [
        thumb(state, int(i), selected, f"{state.name(int(i))} · {state.confidence[i]:.1%}") for i in shown
    ]
    second = [
        thumb(state, int(i), selected, f"{state.name(int(i))} → {state.class_names[state.predicted[i]]}") for i in wrong
    ]
    body = [
        html.Div(f"correctly classified {name} (first: the average {name})", className="row-title"),
        html.Div(first, className="thumbs"),
        html.Div(f"misclassified {name}: {len(wrong):,}", className="row-title"),
        html.Div(second or [html.Span("none", className="hint")], className="thumbs wrong"),
    ]
    return body, f"page {page + 1} / {pages} · {len(correct):,} correct"
