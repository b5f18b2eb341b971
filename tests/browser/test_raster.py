"""A projection of a million points: drawn by Datashader on the server (dashboard/raster.py), zoomed, lassoed and
hovered in headless chromium, the images it selects checked against the Run's own coordinates."""

from __future__ import annotations

import base64
import csv
import io
import re

import numpy as np
import pytest
import torch
from PIL import Image

from layerscope.dashboard.raster import CELL, EXACT_MAX, HEIGHT, WIDTH
from layerscope.data.datasets import Dataset
from layerscope.models.loading import model_spec
from layerscope.pipeline import create_run
from layerscope.run import Run
from tests.browser.conftest import BUSY, opened, serving, settle
from tests.models import MLP

pytestmark = pytest.mark.browser

N = 1_000_000
GRAPH = "#proj-{} .proj-graph .js-plotly-plot"


def generated(n: int = N) -> Dataset:
    """``n`` 8x8 images of 10 classes: class c lights a bar of its own (row c // 4, column c % 4), on noise."""
    rng = np.random.default_rng(0)
    labels = (np.arange(n) % 10).astype(np.int64)
    images = rng.integers(0, 60, size=(n, 1, 8, 8), dtype=np.uint8)
    rows, columns = labels // 4 * 2 + 1, labels % 4 * 2
    for shift in (-1, 0):
        images[np.arange(n), 0, rows + shift, columns] = 255
    split = (np.arange(n) >= n * 6 // 7).astype(np.uint8)
    return Dataset("generated", images, labels, split, tuple(str(k) for k in range(10)))


@pytest.fixture(scope="module")
def large_run(tmp_path_factory):
    """A million generated images through a small MLP, with the PCA of its input and dense layers."""
    torch.manual_seed(0)
    args = dict(in_channels=1, image_size=8, num_classes=10, hidden=16)
    spec = model_spec("tests.models:MLP", **args)
    out = tmp_path_factory.mktemp("large") / "million"
    return create_run(out, generated(), MLP(**args), spec, device="cpu", pca_kinds=("image", "dense"))


@pytest.fixture(scope="module")
def large_page(browser_context, large_run):
    with serving(large_run) as url, opened(browser_context, url) as page:
        yield page


def meta(page, panel):
    return page.evaluate("sel => document.querySelector(sel).layout.meta", GRAPH.format(panel))


def raster_pixels(page, panel) -> np.ndarray:
    """The raster a panel shows, (HEIGHT, WIDTH, 4) RGBA, decoded from the figure's layout image."""
    source = page.evaluate("sel => document.querySelector(sel).layout.images[0].source", GRAPH.format(panel))
    assert source.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1]))).convert("RGBA"))


def wait_view(page, panel, test: str) -> dict:
    """Wait until the panel's figure meets ``test`` (JavaScript of ``m``, the figure's meta); returns the meta."""
    page.wait_for_function(
        f"sel => {{ const gd = document.querySelector(sel); const m = gd && gd.layout && gd.layout.meta;"
        f" return !!(m && m.raster) && ({test}); }}",
        arg=GRAPH.format(panel),
        timeout=BUSY,
    )
    return meta(page, panel)


def plot_box(page, panel) -> dict:
    """The plot area of a panel on the page, in CSS pixels: left, top, width, height (the page scrolled to the top
    first, where the panels are)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    return page.evaluate(
        """sel => { const gd = document.querySelector(sel); const r = gd.getBoundingClientRect();
                    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
                    return {left: r.left + xa._offset, top: r.top + ya._offset, width: xa._length,
                            height: ya._length}; }""",
        GRAPH.format(panel),
    )


def to_pixels(xy: np.ndarray, view: list[float], box: dict) -> np.ndarray:
    """Data coordinates -> page pixels on a panel showing ``view``."""
    x0, x1, y0, y1 = view
    px = box["left"] + (xy[:, 0] - x0) / (x1 - x0) * box["width"]
    py = box["top"] + (y1 - xy[:, 1]) / (y1 - y0) * box["height"]
    return np.column_stack([px, py])


def test_a_million_points_are_one_raster_with_the_legend_of_a_scatter(large_page, large_run):
    for panel in "ab":
        # drawn again at its plot's size, once the page has measured it
        m = wait_view(large_page, panel, "Math.abs(m.raster.size[0] - gd._fullLayout.xaxis._length) <= 1")
        assert m["raster"]["shown"] == N and not m["raster"].get("points")
        traces = large_page.evaluate(
            "sel => document.querySelector(sel)._fullData.map(t => [t.type, t.name, t._length || 0])",
            GRAPH.format(panel),
        )
        assert traces[0][0] == "heatmap"  # the hover and click grid
        assert [name for kind, name, _ in traces[1:]] == [str(d) for d in range(10)]
        assert all(length <= 1 for _, _, length in traces[1:])  # legend entries, no points
        pixels = raster_pixels(large_page, panel)
        width, height = m["raster"]["size"]
        assert pixels.shape == (height, width, 4) and (width, height) != (WIDTH, HEIGHT)
        # points cover a good part of the view, in many colours (the ten classes)
        drawn = pixels[..., 3] > 0
        assert 0.05 < drawn.mean() < 0.95
        assert len(np.unique(pixels[drawn][:, :3] // 32, axis=0)) >= 10
    assert "1,000,000 points" in large_page.text_content("#proj-a .proj-quality")
    # the first selected image is ringed where the Run has it
    large_page.wait_for_function(
        "() => { const r = document.querySelector('#proj-b .selected-ring');"
        " return r && r.style.display === 'block'; }",
        timeout=BUSY,
    )
    ring = large_page.evaluate("() => document.querySelector('#proj-b .selected-ring').dataset")
    at = np.asarray(Run(large_run.path).projection("input", "pca"))[0]
    assert float(ring["x"]) == pytest.approx(at[0], rel=1e-5) and float(ring["y"]) == pytest.approx(at[1], rel=1e-5)


def test_zooming_draws_the_view_again_and_a_few_points_as_points(large_page, large_run):
    full = meta(large_page, "a")["raster"]["full"]
    box = plot_box(large_page, "a")
    large_page.mouse.move(box["left"] + box["width"] / 2, box["top"] + box["height"] / 2)
    large_page.mouse.wheel(0, -400)  # scroll zoom, in
    zoomed = wait_view(large_page, "a", f"m.raster.view[1] - m.raster.view[0] < {0.98 * (full[1] - full[0])}")
    x0, x1, y0, y1 = zoomed["raster"]["view"]
    xy = np.asarray(Run(large_run.path).projection("net.4", "pca"))
    inside = (xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1)
    assert zoomed["raster"]["shown"] == int(inside.sum())
    # a view of few enough points: they are drawn as points, each with its image index
    cx, cy = np.median(xy, axis=0)
    span = np.sort(np.hypot(*(xy - [cx, cy]).T))[EXACT_MAX // 2]  # a square holding about EXACT_MAX / 2 points
    view = [float(v) for v in (cx - span / 2, cx + span / 2, cy - span / 2, cy + span / 2)]
    large_page.evaluate(
        "([sel, v]) => window.Plotly.relayout(document.querySelector(sel),"
        " {'xaxis.range': [v[0], v[1]], 'yaxis.range': [v[2], v[3]]})",
        [GRAPH.format("a"), view],
    )
    near = wait_view(large_page, "a", "m.raster.points === true")
    x0, x1, y0, y1 = near["raster"]["view"]
    inside = np.flatnonzero((xy[:, 0] >= x0) & (xy[:, 0] <= x1) & (xy[:, 1] >= y0) & (xy[:, 1] <= y1))
    drawn = large_page.evaluate(
        """sel => document.querySelector(sel)._fullData.filter(t => t.name !== 'misclassified' && t.customdata)
                   .flatMap(t => Array.from(t.customdata))""",
        GRAPH.format("a"),
    )
    assert 0 < len(inside) <= EXACT_MAX and sorted(drawn) == inside.tolist()
    # a reset of the axes: the whole raster again
    large_page.evaluate(
        "sel => window.Plotly.relayout(document.querySelector(sel),"
        " {'xaxis.autorange': true, 'yaxis.autorange': true})",
        GRAPH.format("a"),
    )
    wait_view(large_page, "a", f"!m.raster.points && m.raster.shown === {N}")


def test_a_lasso_over_the_raster_selects_the_images_inside_it(large_page, large_run):
    m = wait_view(large_page, "b", f"m.raster.shown === {N}")
    view = m["raster"]["view"]
    box = plot_box(large_page, "b")
    # a triangle over the middle of the panel, drawn with the mouse as a user draws a lasso
    corners = [(0.3, 0.35), (0.7, 0.4), (0.45, 0.75)]
    path = [(box["left"] + fx * box["width"], box["top"] + fy * box["height"]) for fx, fy in corners]
    large_page.mouse.move(*path[0])
    large_page.mouse.down()
    for point in [*path[1:], path[0]]:
        large_page.mouse.move(*point, steps=12)
    large_page.mouse.up()
    large_page.wait_for_selector(".gallery .row-title:has-text('brushed in a projection')", timeout=BUSY)
    with large_page.expect_download(timeout=BUSY) as info:
        large_page.click("#selection-csv")
    with open(info.value.path()) as f:
        chosen = np.array([int(row["index"]) for row in csv.DictReader(f)])
    # what the triangle holds, from the Run's coordinates: each point's distance (px) inside each edge
    pixels = to_pixels(np.asarray(Run(large_run.path).projection("input", "pca"), np.float64), view, box)
    corners_px = np.asarray(path)
    centre = corners_px.mean(axis=0)

    def inward(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        edge = b - a
        cross = ((points[..., 0] - a[0]) * edge[1] - (points[..., 1] - a[1]) * edge[0]) / np.hypot(*edge)
        return cross * np.sign(((centre[0] - a[0]) * edge[1] - (centre[1] - a[1]) * edge[0]))

    sides = np.stack(
        [inward(pixels, a, b) for a, b in zip(corners_px, np.roll(corners_px, -1, axis=0), strict=True)], axis=1
    )
    clearly_in = np.flatnonzero((sides > 1.5).all(axis=1))
    clearly_out = np.flatnonzero((sides < -1.5).any(axis=1))
    assert len(clearly_in) > 1000
    assert np.isin(clearly_in, chosen).all()  # every image well inside is selected...
    assert not np.isin(clearly_out, chosen).any()  # ... and none well outside
    assert len(np.unique(chosen)) == len(chosen)
    # the selection lights up in the other panel's raster, the rest faded
    lit = wait_view(large_page, "a", "m.raster.lit > 0")
    assert lit["raster"]["lit"] == len(chosen)


def test_a_click_on_the_raster_selects_an_image_drawn_there(large_page, large_run):
    m = wait_view(large_page, "b", f"m.raster.shown === {N}")
    box = plot_box(large_page, "b")
    xy = np.asarray(Run(large_run.path).projection("input", "pca"), np.float64)
    pixels = to_pixels(xy, m["raster"]["view"], box)
    # a spot where points are: the median image of class 3's
    spot = np.median(pixels[Run(large_run.path).labels == 3], axis=0)
    # the lasso of the test before, cleared (plotly's first click on a panel with a selection clears it)
    large_page.keyboard.press("Escape")
    large_page.wait_for_selector(".gallery .row-title:has-text('brushed in a projection')", state="detached")
    for panel in "ab":  # drawn again without it
        wait_view(large_page, panel, "m.raster.lit === 0")
    settle(large_page)
    before = large_page.text_content("#preview-caption")
    hovered = large_page.text_content("#proj-b .proj-hover-text")
    large_page.mouse.move(*spot)
    large_page.wait_for_function(
        "h => document.querySelector('#proj-b .proj-hover-text').textContent !== h", arg=hovered, timeout=BUSY
    )
    large_page.mouse.click(*spot)
    large_page.wait_for_function(
        "b => document.querySelector('#preview-caption').textContent !== b", arg=before, timeout=BUSY
    )
    index = int(re.match(r"(train|test)-(\d+)", large_page.text_content("#preview-caption")).group(2))
    # the image selected is drawn in the cell clicked (raster.CELL px square)
    assert np.abs(pixels[index] - spot).max() <= CELL + 1
    large_page.wait_for_function(
        "() => { const r = document.querySelector('#proj-b .selected-ring'); return r && r.style.display === 'block'"
        f" && Math.abs(parseFloat(r.dataset.x) - {xy[index, 0]}) < 1e-4; }}",
        timeout=BUSY,
    )
