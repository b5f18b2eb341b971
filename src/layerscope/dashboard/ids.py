"""Component ids, in one place, so layout and callbacks cannot drift apart."""

SELECTED = "selected"  # store: the previewed image (int index or "mean:k")
ROWS = "rows"  # store: activation rows, [{"kind": "image"|"class"|"group", "key": ...}]
PANELS = "panels"  # store: layers with an open activation panel
GROUPS = "groups"  # store: {name: [indices]}
SELECTION = "selection"  # store: indices brushed in a projection, or None
HIGHLIGHT_DONE = "highlight-done"  # store written by the clientside highlight (its size)
SELECTION_ORIGIN = "selection-origin"  # store: the projection panel ("a"/"b") the selection was brushed in
EXPLAIN = "explain"  # store: index of the misclassified image being explained, or None
DBLCLICK = "dblclick"  # store: {"key": ...} of the last double-clicked thumbnail (set by assets/layerscope.js)
GALLERY_FILTER = "gallery-filter"  # store: {"true": t, "pred": p} from a confusion cell, or None

PREVIEW_IMAGE = "preview-image"
PREVIEW_CAPTION = "preview-caption"
PREVIEW_PROBS = "preview-probs"
ADD_BUTTON = "add-button"
EXPLAIN_BUTTON = "explain-button"

CONFUSION = "confusion"

GALLERY_DIGIT = "gallery-digit"
GALLERY_SORT = "gallery-sort"
GALLERY_PAGE = "gallery-page"
GALLERY_PREV = "gallery-prev"
GALLERY_NEXT = "gallery-next"
GALLERY_BODY = "gallery-body"
GALLERY_BRUSHED = "gallery-brushed"
GALLERY_INFO = "gallery-info"
GALLERY_CLEAR_FILTER = "gallery-clear-filter"
THUMB = "thumb"  # pattern: {"type": THUMB, "key": index or "mean:k"}

PANEL_IDS = ("a", "b")  # the two projection panels


def proj(part: str, panel: str) -> str:
    """Id of one part of a projection panel: proj("graph", "a") -> "proj-a-graph"."""
    return f"proj-{panel}-{part}"


JOBS_INTERVAL = "jobs-interval"

GROUP_NAME = "group-name"
GROUP_SAVE = "group-save"
GROUP_QUICK_KIND = "group-quick-kind"
GROUP_QUICK_CLASS = "group-quick-class"
GROUP_QUICK_ADD = "group-quick-add"
GROUP_LIST = "group-list"
GROUP_REMOVE = "group-remove"  # pattern: {"type": GROUP_REMOVE, "name": ...}
GROUP_ADD_ROW = "group-add-row"  # pattern
GROUP_RENAME = "group-rename"  # pattern: input
GROUP_RENAME_BUTTON = "group-rename-button"  # pattern

PANEL_LAYER = "panel-layer"
PANEL_OPEN = "panel-open"
PANEL_AREA = "panel-area"
PANEL_CLOSE = "panel-close"  # pattern: {"type": PANEL_CLOSE, "layer": ...}
PANEL_SORT = "panel-sort"  # pattern: {"type": PANEL_SORT, "layer": ...}
ROW_REMOVE = "row-remove"  # pattern: {"type": ROW_REMOVE, "row": k}
ROW_NAME = "row-name"  # pattern: {"type": ROW_NAME, "row": k}
CLASS_ROWS = "class-rows"

# inside the network
NET_GRAPH = "net-graph"
NET_EXPAND = "net-expand"  # checklist: conv layers shown channel by channel
NET_EDGES = "net-edges"  # slider: strongest edges kept per node
NET_THRESHOLD = "net-threshold"  # slider: minimum |w| as a share of the connection's largest
NET_COLOR = "net-color"  # dropdown: what colours the nodes
NET_INFO = "net-info"

FMAP_SCALE = "fmap-scale"
FMAP_AREA = "fmap-area"
FMAP_TILE = "fmap-tile"  # pattern: {"type": FMAP_TILE, "layer": ..., "unit": c}
FMAP_FOCUS = "fmap-focus"  # store: {"layer", "unit"} of the enlarged channel
FMAP_ZOOM = "fmap-zoom"
FMAP_OPEN_UNIT = "fmap-open-unit"

UNIT = "unit"  # store: {"layer", "unit"} shown in the unit card
UNIT_LAYER = "unit-layer"
UNIT_INDEX = "unit-index"
UNIT_TITLE = "unit-title"
UNIT_WEIGHTS = "unit-weights"
UNIT_CLASSES = "unit-classes"
UNIT_TOPK = "unit-topk"
UNIT_FEATUREVIS = "unit-featurevis"
UNIT_GUIDED = "unit-guided"
UNIT_INTERVAL = "unit-interval"
TOPK_THUMB = "topk-thumb"  # pattern: {"type": TOPK_THUMB, "key": index, "rank": r}
NO_MODEL = "no-model"
