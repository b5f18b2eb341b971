"""Component ids, in one place, so layout and callbacks cannot drift apart."""

from typing import Any

SELECTED = "selected"  # store: the previewed image (int index or "mean:k")
ROWS = "rows"  # store: activation rows, [{"kind": "image"|"class"|"group", "key": ...}]
PANELS = "panels"  # store: layers with an open activation panel
GROUPS = "groups"  # store: {name: [indices]}
SELECTION = "selection"  # store: indices brushed in a projection, or None
HIGHLIGHT_DONE = "highlight-done"  # store written by the clientside highlight (its size)
SELECTION_ORIGIN = "selection-origin"  # store: the projection panel ("a"/"b") the selection was brushed in
EXPLAIN = "explain"  # store: index of the misclassified image being explained, or None
DBLCLICK = "dblclick"  # store: {"key": ...} of the last double-clicked thumbnail (set by assets/layerscope.js)
GALLERY_SHOWN = "gallery-shown"  # store: the gallery page shown (gallery.gallery_key)
GALLERY_FILTER = "gallery-filter"  # store: {"true": t, "pred": p} from a confusion cell, or None
PAGE_ERROR = "page-error"  # the page's notice: what a request could not do, one sentence (messages.py); click hides it

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


def proj(part: str, panel: Any) -> dict[str, Any]:
    """Id of one part of a projection panel (projection.py): proj("graph", "a") -> {"type": "proj-graph", "panel":
    "a"}; proj("graph", MATCH) in a callback serves every panel. In the page the panel's box is #proj-a and the part
    has the class proj-graph."""
    return {"type": f"proj-{part}", "panel": panel}


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
GROUP_ERROR = "group-error"  # why the last edit of the groups was refused

PANEL_LAYER = "panel-layer"
PANEL_OPEN = "panel-open"
PANEL_AREA = "panel-area"
PANEL_CLOSE = "panel-close"  # pattern: {"type": PANEL_CLOSE, "layer": ...}
PANEL_ORDERS = "panel-orders"  # store: {layer: unit order} of the activation panels
PANEL_SORT = "panel-sort"  # pattern: {"type": PANEL_SORT, "layer": ...}
PANEL_BODY = "panel-body"  # pattern: {"type": PANEL_BODY, "layer": ...}, a panel's rows
PANEL_LEGEND = "panel-legend"  # pattern: {"type": PANEL_LEGEND, "layer": ...}, its colour range
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
NET_DAG = "net-dag"  # the model's graph (dash-cytoscape)
NET_COLLAPSED = "net-collapsed"  # store: the blocks the model graph draws folded
NET_DAG_INFO = "net-dag-info"
NET_FOLD_ALL = "net-fold-all"
NET_OPEN_ALL = "net-open-all"
NET_DAG_PNG = "net-dag-png"
ATTN_AREA = "attn-area"  # a vision transformer's attention maps of the selected image (attention_card.py)

FMAP_SCALE = "fmap-scale"
FMAP_AREA = "fmap-area"
FMAP_TILE = "fmap-tile"  # pattern: {"type": FMAP_TILE, "layer": ..., "unit": c}
FMAP_GRID = "fmap-grid"  # pattern: {"type": FMAP_GRID, "layer": ...}, a conv layer's tiles
FMAP_HEAD = "fmap-head"  # pattern: {"type": FMAP_HEAD, "layer": ...}, the grid's heading
FMAP_NOTE = "fmap-note"  # what is wrong with the image the feature maps were asked for
FMAP_FOCUS = "fmap-focus"  # store: {"layer", "unit"} of the enlarged channel
FMAP_ZOOM = "fmap-zoom"
FMAP_OPEN_UNIT = "fmap-open-unit"
FMAP_SHOWN = "fmap-shown"  # store: {"layer", "first"} of the page of channels shown, or None (all layers at once)
FMAP_LAYER = "fmap-layer"  # dropdown: the layer whose maps are shown, when one at a time
FMAP_PREV = "fmap-prev"
FMAP_NEXT = "fmap-next"
FMAP_PAGE_TEXT = "fmap-page-text"

UNIT = "unit"  # store: {"layer", "unit"} shown in the unit card
UNIT_ASKED = "unit-asked"  # store outside the Network view: the unit an address names (workspace.restore)
UNIT_LAYER = "unit-layer"
UNIT_INDEX = "unit-index"
UNIT_TITLE = "unit-title"
UNIT_WEIGHTS = "unit-weights"
UNIT_CLASSES = "unit-classes"
UNIT_TOPK = "unit-topk"
UNIT_FEATUREVIS = "unit-featurevis"
UNIT_GUIDED = "unit-guided"
UNIT_INTERVAL = "unit-interval"
UNIT_ERROR = "unit-error"  # why the unit asked for cannot be shown (a unit number the layer does not have)
UNIT_FEATUREVIS_START = "unit-featurevis-start"  # button: compute the unit's feature visualisation (kept in the Run)
UNIT_FEATUREVIS_CANCEL = "unit-featurevis-cancel"  # button: stop the feature visualisation being computed
UNIT_TOPK_START = "unit-topk-start"  # button: compute the top images again, once cancelled or failed
UNIT_TOPK_CANCEL = "unit-topk-cancel"  # button: stop computing the top images
TOPK_THUMB = "topk-thumb"  # pattern: {"type": TOPK_THUMB, "key": index, "rank": r}
NO_MODEL = "no-model"

# the Draw panel
DRAW_CANVAS = "draw-canvas"
DRAW_CLEAR = "draw-clear"
DRAW_UNDO = "draw-undo"
DRAW_KEEP = "draw-keep"
DRAW_STROKES = "draw-strokes"  # store: {"strokes": [[[x, y], ...], ...], "version": n}, set by assets/draw.js
DRAW_VERSION = "draw-version"  # store: bumped when the live drawing changed on the server
DRAW_SETTLED = "draw-settled"  # store: DRAW_VERSION once a stroke ended; the heavier views follow it
DRAW_BEFORE = "draw-before"  # store: the image selected before drawing began (selected again on Clear)
DRAW_PREVIEW = "draw-preview"
DRAW_PROBS = "draw-probs"
DRAW_CAPTION = "draw-caption"
DRAW_NEIGHBOURS = "draw-neighbours"
DRAW_PLACED = "draw-placed"
DRAW_PCA = "draw-pca"  # button: compute the PCA of conv layers that nearest images need
DRAW_PCA_CANCEL = "draw-pca-cancel"  # button: stop computing it
DRAW_INTERVAL = "draw-interval"  # refreshes the nearest images while the PCA of conv layers is computed

# interventions: units switched off (ablation) and what a decision rests on (attribution)
UNIT_ABLATE = "unit-ablate"  # the unit card's "Switch off this unit" button
ABL_STORE = "abl-store"  # store: the ablations, [{"layer", "units", "scale"}]
ABL_LAYER = "abl-layer"
ABL_UNITS = "abl-units"
ABL_SCALE = "abl-scale"
ABL_ADD = "abl-add"
ABL_ERROR = "abl-error"
ABL_LIST = "abl-list"
ABL_REMOVE = "abl-remove"  # pattern: {"type": ABL_REMOVE, "i": k}
ABL_ITEM_SCALE = "abl-item-scale"  # pattern: {"type": ABL_ITEM_SCALE, "i": k}
ABL_RESET = "abl-reset"
ABL_SAVE_NAME = "abl-save-name"
ABL_SAVE = "abl-save"
ABL_SAVED = "abl-saved"
ABL_APPLY = "abl-apply"  # pattern: {"type": ABL_APPLY, "name": ...}
ABL_FORGET = "abl-forget"  # pattern: {"type": ABL_FORGET, "name": ...}
ABL_STATUS = "abl-status"
ABL_CANCEL = "abl-cancel"  # button: stop re-evaluating the test set
ABL_AGAIN = "abl-again"  # button: re-evaluate it again, once cancelled or failed
ABL_SUMMARY = "abl-summary"
ABL_IMAGE = "abl-image"
ABL_CLASSES = "abl-classes"
ABL_CONFUSION = "abl-confusion"
ABL_INTERVAL = "abl-interval"
ABL_MODE = "abl-mode"  # checklist: while on, clicks on graph nodes and panel cells switch units off (and back on)
ABL_CLICK = "abl-click"  # store: {"layer", "unit", "t"} of the last clicked panel cell (set by assets/ablate.js)
ABL_NODES = "abl-nodes"  # store: the graph's crosses over switched-off units (a trace), drawn in by assets/ablate.js
ABL_MARKS = "abl-marks"  # store written by the clientside marking of switched-off panel cells (their count)
ATTR_METHOD = "attr-method"
ATTR_TARGET = "attr-target"
ATTR_LAYER = "attr-layer"
ATTR_LAYER_BOX = "attr-layer-box"
ATTR_IMAGE = "attr-image"
ATTR_OVERLAY = "attr-overlay"
ATTR_INFO = "attr-info"
ATTR_SANITY = "attr-sanity"  # checklist: show the model-randomisation check
ATTR_SANITY_AREA = "attr-sanity-area"
ATTR_SANITY_FIG = "attr-sanity-fig"
ATTR_INTERVAL = "attr-interval"

# the workspace: header, views, the selection sidebar, the address bar
VIEW = "view"  # store: the view shown ("explore", "activations", ...; views.py)
SIDEBAR = "sidebar"
SEARCH = "search"  # the header's box: an image index or name selects it
SEARCH_ERROR = "search-error"
GOTO_ATTRIBUTION = "goto-attribution"  # sidebar buttons that open the Intervene view
GOTO_ABLATION = "goto-ablation"
DRAW_OVER = "draw-over"  # sidebar: the selected image onto the Draw canvas (assets/draw.js), and the Draw view
ADDRESS = "address"  # store: the page's state as a query string (address.py); assets/workspace.js writes the URL
ADDRESS_DONE = "address-done"  # store written by workspace.js once the URL shows ADDRESS
VIEW_SHOWN = "view-shown"  # store written by workspace.js once the view is shown and its graphs measured
VIEW_WANTED = "view-wanted"  # store: a view to lay out, the first time it opens (workspace.js wantView)
VIEW_LOADED = "view-loaded"  # store: the views laid out in the page so far (workspace.lay_out)
ADDRESS_IN = "address-in"  # store: the URL's query string at page open and after back/forward (workspace.js)
ADDRESS_OPENED = "address-opened"  # store written by workspace.js once it read the address the page opened with
MARKED = "marked"  # store written by the clientside move of the selected image's ring (the panels it is in)
SELECTION_CSV = "selection-csv"  # button: the brushed selection (or a group) as CSV
DOWNLOAD = "download"  # dcc.Download of the page's exports
GROUP_CSV = "group-csv"  # pattern: {"type": GROUP_CSV, "name": ...}


GATE_PLAN = "gate-plan"  # store: which view each gate opens for and which stores it follows (views.gate_plan)


def gate(name: str) -> str:
    """Id of a heavy callback's gate (views.py): gate("fmaps") -> "gate-fmaps"."""
    return f"gate-{name}"


def nav(view: str) -> str:
    """Id of a view's tab in the header: nav("network") -> "nav-network"."""
    return f"nav-{view}"


def view(name: str) -> str:
    """Id of a view's section: view("network") -> "view-network"."""
    return f"view-{name}"


# the training timeline (timeline_card.py): shown when the Run kept snapshots while training
SNAPSHOT = "snapshot"  # store: the snapshot the page shows (an index), or absent for the Run as trained
TL_SLIDER = "tl-slider"
TL_PLAY = "tl-play"
TL_BACK = "tl-back"
TL_NEXT = "tl-next"
TL_TICK = "tl-tick"  # interval: the next snapshot while playing
TL_READOUT = "tl-readout"
TL_CURVE = "tl-curve"  # the test accuracy over the snapshots, the shown one marked
TL_INFO = "tl-info"  # store: per snapshot its step, epoch, test accuracy and loss (for the readout, in the browser)
TL_CHANGED = "tl-changed"  # button: the images whose prediction changed into the shown snapshot, as a group
TL_CHANGED_NOTE = "tl-changed-note"  # what the group button last saved
TL_BADGE = "tl-badge"  # in the header, on every view: the training snapshot shown, when one is

# Run against Run (compare_card.py): ``serve RUN_A --compare RUN_B``
CMP_SUMMARY = "cmp-summary"
CMP_CKA = "cmp-cka"  # the CKA heatmap: a click opens its two layers in the projections
CMP_GROUP = "cmp-group"  # pattern: {"type": CMP_GROUP, "side": "a" | "b"}: the images only that Run gets right
CMP_NOTE = "cmp-note"
