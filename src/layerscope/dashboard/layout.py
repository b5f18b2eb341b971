"""The page: preview and confusion matrix, two linked projection panels, the gallery, groups, activation panels."""

from __future__ import annotations

from dash import dcc, html

from layerscope.dashboard import ids, views
from layerscope.dashboard.components import card
from layerscope.dashboard.draw import draw_layout
from layerscope.dashboard.gallery import FIRST, gallery_page
from layerscope.dashboard.inside import inside_layout
from layerscope.dashboard.interventions import interventions_layout
from layerscope.dashboard.state import DashboardState
from layerscope.interop.seed_json import FILE_METHOD

METHOD_LABELS = {
    "file": "from file",
    "pca": "PCA",
    "tsne": "t-SNE",
    "umap": "UMAP",
    "lda": "LDA",
    "isomap": "Isomap",
}
# what each method does, one line: the tooltip of its option
METHOD_HINTS = {
    "file": "the 2-D coordinates the imported file gives",
    "pca": "PCA: the two directions of largest variance; linear, keeps global distances, fast",
    "tsne": "t-SNE: keeps each point's nearest neighbours close; clusters are real, distances between them are not",
    "umap": "UMAP: neighbour graph laid out in 2-D; like t-SNE, keeps more of the global layout",
    "lda": "LDA: the linear directions that best separate the classes (uses the labels)",
    "isomap": "Isomap: keeps distances measured along the neighbour graph (geodesic), for curved manifolds",
}
QUALITY_HINTS = {
    "knn_accuracy": "the share of points whose 10 nearest neighbours in the 2-D map mostly share their label",
    "trustworthiness": "how far 2-D neighbours were neighbours in the layer too (1: no false neighbours)",
}
COLOR_OPTIONS = [
    {"label": "true label", "value": "label"},
    {"label": "predicted label", "value": "predicted"},
    {"label": "correct / wrong", "value": "correct"},
    {"label": "confidence", "value": "confidence"},
]
SPLIT_OPTIONS = [{"label": s, "value": s} for s in ("all", "train", "test")]


def method_options(state: DashboardState, layer: str) -> list[dict[str, str]]:
    return [{"label": METHOD_LABELS[m], "value": m, "title": METHOD_HINTS[m]} for m in state.methods(layer)]


def projection_panel(state: DashboardState, panel: str, layer: str, method: str) -> html.Div:
    colors = [c for c in COLOR_OPTIONS if c["value"] != "confidence" or state.has_probabilities]
    controls = html.Div(
        [
            dcc.Dropdown(state.layers, layer, id=ids.proj("layer", panel), clearable=False, className="ctl"),
            dcc.Dropdown(
                method_options(state, layer), method, id=ids.proj("method", panel), clearable=False, className="ctl"
            ),
            dcc.Dropdown(colors, "label", id=ids.proj("color", panel), clearable=False, className="ctl wide"),
            dcc.RadioItems(SPLIT_OPTIONS, "all", id=ids.proj("split", panel), inline=True, className="radio"),
        ],
        className="controls",
    )
    return card(
        f"Projection {panel.upper()}",
        controls,
        html.Div(
            [
                html.Div(id=ids.proj("status", panel), className="status"),
                html.Button(
                    "Cancel",
                    id=ids.proj("cancel", panel),
                    className="btn small",
                    style={"display": "none"},
                    title="stop computing this projection",
                ),
            ],
            className="status-row",
        ),
        html.Div(
            [
                dcc.Graph(
                    id=ids.proj("graph", panel),
                    config={
                        "displaylogo": False,
                        "scrollZoom": True,
                        "toImageButtonOptions": {"filename": f"projection-{panel}", "scale": 2},
                    },
                    className="proj-graph",
                ),
                html.Div(
                    [html.Img(id=ids.proj("hover-img", panel)), html.Div(id=ids.proj("hover-text", panel))],
                    id=ids.proj("hover", panel),
                    className="hover-box",
                ),
            ],
            className="scatter",
        ),
        html.Div(
            [
                html.Div(id=ids.proj("quality", panel), className="quality"),
                html.Div(
                    [
                        html.Span("coordinates", className="label"),
                        html.Button(
                            "CSV", id=ids.proj("csv", panel), className="btn small", title="x, y of every image"
                        ),
                        html.Button(".npy", id=ids.proj("npy", panel), className="btn small", title="(N, 2) float32"),
                    ],
                    className="exports",
                ),
            ],
            className="panel-foot",
        ),
        # the images brushed, clicked and hovered, by index (assets/workspace.js pointIndices)
        dcc.Store(id=ids.proj("brush", panel)),
        dcc.Store(id=ids.proj("clicked", panel)),
        dcc.Store(id=ids.proj("hovered", panel)),
        dcc.Store(id=ids.proj("ringed", panel)),  # written by workspace.js once the selected image's ring follows
        class_name="projection",
    )


def default_views(state: DashboardState) -> tuple[tuple[str, str], tuple[str, str]]:
    """(layer, method) of projection panels A and B when the page opens: a file's own projections when it has them
    (its deepest and its first), else a dense layer and the input, by PCA."""
    from_file = [layer for layer in state.layers if state.available(layer, FILE_METHOD)]
    if from_file:
        return (from_file[-1], FILE_METHOD), (from_file[0], FILE_METHOD)
    layers = state.layers
    first = next((name for name in ("fc2", "fc1") if name in layers), layers[-1])
    return (first, "pca"), (layers[0], "pca")


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
    return html.Header(
        [
            html.Div(
                [html.H1("layerscope"), html.Span(" · ".join(facts), className="subtitle", title=state.run.path.name)],
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
        html.Button("Explain misclassification", id=ids.EXPLAIN_BUTTON, className="btn warn"),
    ]
    if state.has_model:
        actions += [
            html.Button("Attributions", id=ids.GOTO_ATTRIBUTION, className="btn", title="what the decision rests on"),
            html.Button("Switch units off", id=ids.GOTO_ABLATION, className="btn", title="ablation on the test set"),
        ]
    return html.Aside(
        [
            html.H3("Selected image"),
            html.Img(id=ids.PREVIEW_IMAGE, className="preview-img"),
            html.Div(id=ids.PREVIEW_CAPTION, className="caption"),
            dcc.Graph(id=ids.PREVIEW_PROBS, config={"displayModeBar": False}, className="probs"),
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


def _gallery(state: DashboardState) -> html.Div:
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


def _groups(state: DashboardState) -> html.Div:
    return card(
        "Groups",
        html.Div(
            [
                dcc.Input(id=ids.GROUP_NAME, placeholder="name for the brushed points", className="text"),
                html.Button("Save selection as group", id=ids.GROUP_SAVE, className="btn"),
                html.Button("Download selection (CSV)", id=ids.SELECTION_CSV, className="btn"),
            ],
            className="controls",
        ),
        html.Div(
            [
                dcc.Dropdown(
                    [{"label": "true digit", "value": "true"}, {"label": "misclassified as", "value": "wrong-as"}],
                    "true",
                    id=ids.GROUP_QUICK_KIND,
                    clearable=False,
                    className="ctl",
                ),
                dcc.Dropdown(
                    [{"label": n, "value": k} for k, n in enumerate(state.class_names)],
                    0,
                    id=ids.GROUP_QUICK_CLASS,
                    clearable=False,
                    className="ctl narrow",
                ),
                html.Button("Add group", id=ids.GROUP_QUICK_ADD, className="btn"),
            ],
            className="controls",
        ),
        html.Div(id=ids.GROUP_ERROR, className="bad"),
        html.Div(id=ids.GROUP_LIST, className="group-list"),
        dcc.Download(id=ids.DOWNLOAD),
        class_name="groups-card",
    )


def _activation_panels(state: DashboardState) -> html.Div:
    return card(
        "Activation panels",
        html.Div(
            [
                dcc.Dropdown(state.activation_layers, None, id=ids.PANEL_LAYER, placeholder="layer", className="ctl"),
                html.Button("Open panel", id=ids.PANEL_OPEN, className="btn"),
                html.Button("Add per-digit averages", id=ids.CLASS_ROWS, className="btn"),
            ],
            className="controls",
        ),
        html.Div(
            "Each row is an image, a group's mean or a digit's average; each cell a unit, coloured by its activation.",
            className="hint",
        ),
        html.Div(id=ids.PANEL_AREA),
    )


def build_layout(state: DashboardState) -> html.Div:
    confusion = card(
        "Confusion matrix (test set)",
        dcc.Graph(id=ids.CONFUSION, config={"displayModeBar": False}),
        html.Div("Click a cell to list its images in the gallery and highlight them.", className="hint"),
        class_name="confusion-card",
    )
    (first, method_a), (second, method_b) = default_views(state)
    projections = html.Div(
        [projection_panel(state, "a", first, method_a), projection_panel(state, "b", second, method_b)],
        className="row two projections",
    )
    explore = [
        projections,
        html.Div(
            [_gallery(state), html.Div([confusion, _groups(state)], className="stack")], className="row explore-below"
        ),
    ]
    body = {
        "explore": explore,
        "activations": [_activation_panels(state)],
        "network": inside_layout(state),
        "draw": draw_layout(state),
        "intervene": interventions_layout(state),
    }
    stores = [
        dcc.Store(id=ids.SELECTED, data=0),
        # what a visitor builds survives a reload of the page (sessionStorage: this tab's, not another's)
        dcc.Store(id=ids.ROWS, data=[], storage_type="session"),
        dcc.Store(id=ids.PANELS, data=[first] if first in state.activation_layers else [], storage_type="session"),
        dcc.Store(id=ids.GROUPS, data={}, storage_type="session"),
        dcc.Store(id=ids.PANEL_ORDERS, data={}, storage_type="session"),
        dcc.Store(id=ids.SELECTION, data=None),
        dcc.Store(id=ids.SELECTION_ORIGIN, data=None),
        dcc.Store(id=ids.HIGHLIGHT_DONE, data=None),
        dcc.Store(id=ids.DBLCLICK, data=None),
        dcc.Store(id=ids.EXPLAIN, data=None),
        dcc.Store(id=ids.GALLERY_FILTER, data=None),
        dcc.Store(id=ids.GALLERY_PAGE, data=0),
        dcc.Store(id=ids.VIEW, data=views.DEFAULT),
        *views.gate_stores(state.has_model),
        dcc.Store(id=ids.ADDRESS, data=None),  # the page's state as a query string (address.py), for the URL
        dcc.Store(id=ids.ADDRESS_IN, data=None),  # the URL's query string at page open and on back/forward
        dcc.Store(id=ids.MARKED, data=None),
        dcc.Store(id=ids.ADDRESS_DONE, data=None),
        dcc.Store(id=ids.ADDRESS_OPENED, data=None),
        dcc.Store(id=ids.VIEW_SHOWN, data=None),
        dcc.Interval(id=ids.JOBS_INTERVAL, interval=1000, disabled=True),
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
                                children,
                                id=ids.view(name),
                                className="view active" if name == views.DEFAULT else "view",
                            )
                            for name, children in body.items()
                        ]
                    ),
                ],
                className="workspace",
            ),
            *stores,
        ],
        className="page",
    )
