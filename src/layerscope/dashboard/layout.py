"""The page: preview and confusion matrix, two linked projection panels, the gallery, groups, activation panels."""

from __future__ import annotations

from dash import dcc, html

from layerscope.dashboard import ids
from layerscope.dashboard.components import card
from layerscope.dashboard.draw import draw_layout
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
COLOR_OPTIONS = [
    {"label": "true label", "value": "label"},
    {"label": "predicted label", "value": "predicted"},
    {"label": "correct / wrong", "value": "correct"},
    {"label": "confidence", "value": "confidence"},
]
SPLIT_OPTIONS = [{"label": s, "value": s} for s in ("all", "train", "test")]


def method_options(state: DashboardState, layer: str) -> list[dict[str, str]]:
    return [{"label": METHOD_LABELS[m], "value": m} for m in state.methods(layer)]


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
        html.Div(id=ids.proj("status", panel), className="status"),
        html.Div(
            [
                dcc.Graph(id=ids.proj("graph", panel), config={"displaylogo": False, "scrollZoom": True}),
                html.Div(
                    [html.Img(id=ids.proj("hover-img", panel)), html.Div(id=ids.proj("hover-text", panel))],
                    id=ids.proj("hover", panel),
                    className="hover-box",
                ),
            ],
            className="scatter",
        ),
        html.Div(id=ids.proj("quality", panel), className="quality"),
        dcc.Store(id=ids.proj("brush", panel)),
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


def build_layout(state: DashboardState) -> html.Div:
    m = state.run.manifest
    accuracy = m.get("metrics", {}).get("test_accuracy")
    model = m["model"]["class"].split(":")[-1] if state.has_model else f"from {m['source']['kind']} (no model)"
    header = html.Header(
        [
            html.H1("layerscope"),
            html.Span(
                f"{m['dataset']['name']} · {m['dataset']['n_images']:,} images · {model}"
                + (f" · {'test ' if state.has_model else ''}accuracy {accuracy:.2%}" if accuracy is not None else ""),
                className="subtitle",
            ),
        ]
    )
    preview = card(
        "Selected image",
        html.Div(
            [
                html.Img(id=ids.PREVIEW_IMAGE, className="preview-img"),
                html.Div(
                    [
                        html.Div(id=ids.PREVIEW_CAPTION, className="caption"),
                        dcc.Graph(id=ids.PREVIEW_PROBS, config={"displayModeBar": False}, className="probs"),
                        html.Div(
                            [
                                html.Button("Add to activation panels", id=ids.ADD_BUTTON, className="btn"),
                                html.Button("Explain misclassification", id=ids.EXPLAIN_BUTTON, className="btn warn"),
                            ],
                            className="buttons",
                        ),
                    ],
                    className="preview-side",
                ),
            ],
            className="preview",
        ),
    )
    confusion = card(
        "Confusion matrix (test set)",
        dcc.Graph(id=ids.CONFUSION, config={"displayModeBar": False}),
        html.Div("Click a cell to list its images in the gallery and highlight them.", className="hint"),
    )
    (first, method_a), (second, method_b) = default_views(state)
    projections = html.Div(
        [projection_panel(state, "a", first, method_a), projection_panel(state, "b", second, method_b)],
        className="row two",
    )
    gallery = card(
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
                html.Button("‹", id=ids.GALLERY_PREV, className="btn small"),
                html.Span(id=ids.GALLERY_INFO, className="page-info"),
                html.Button("›", id=ids.GALLERY_NEXT, className="btn small"),
                html.Button("Clear filter", id=ids.GALLERY_CLEAR_FILTER, className="btn small"),
            ],
            className="controls",
        ),
        html.Div(id=ids.GALLERY_BRUSHED, className="gallery"),
        html.Div(id=ids.GALLERY_BODY, className="gallery"),
        html.Div(
            "Click selects and previews; double-click (or 'Add to activation panels') adds the image to the panels.",
            className="hint",
        ),
    )
    groups = card(
        "Groups",
        html.Div(
            [
                dcc.Input(id=ids.GROUP_NAME, placeholder="name for the brushed points", className="text"),
                html.Button("Save selection as group", id=ids.GROUP_SAVE, className="btn"),
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
    )
    panels = card(
        "Activation panels",
        html.Div(
            [
                dcc.Dropdown(state.activation_layers, None, id=ids.PANEL_LAYER, placeholder="layer", className="ctl"),
                html.Button("Open panel", id=ids.PANEL_OPEN, className="btn"),
                html.Button("Add per-digit averages", id=ids.CLASS_ROWS, className="btn"),
            ],
            className="controls",
        ),
        html.Div(id=ids.PANEL_AREA),
    )
    stores = [
        dcc.Store(id=ids.SELECTED, data=0),
        dcc.Store(id=ids.ROWS, data=[]),
        dcc.Store(id=ids.PANELS, data=[first] if first in state.activation_layers else []),
        dcc.Store(id=ids.GROUPS, data={}),
        dcc.Store(id=ids.SELECTION, data=None),
        dcc.Store(id=ids.SELECTION_ORIGIN, data=None),
        dcc.Store(id=ids.HIGHLIGHT_DONE, data=None),
        dcc.Store(id=ids.DBLCLICK, data=None),
        dcc.Store(id=ids.EXPLAIN, data=None),
        dcc.Store(id=ids.GALLERY_FILTER, data=None),
        dcc.Store(id=ids.GALLERY_PAGE, data=0),
        dcc.Interval(id=ids.JOBS_INTERVAL, interval=1000, disabled=True),
    ]
    return html.Div(
        [
            header,
            # what a request could not do, one sentence (messages.on_callback_error); a click hides it
            html.Div(id=ids.PAGE_ERROR, className="page-error", role="alert"),
            html.Main(
                [
                    html.Div([preview, confusion], className="row two"),
                    *draw_layout(state),
                    projections,
                    gallery,
                    groups,
                    panels,
                    *inside_layout(state),
                    *interventions_layout(state),
                ]
            ),
            *stores,
        ],
        className="page",
    )
