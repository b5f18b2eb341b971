"""The Draw panel, as a user drives it with the mouse, in headless chromium over all 70,000 MNIST images."""

import math

import pytest

from tests.browser.conftest import BUSY, show

pytestmark = pytest.mark.browser

PROBS = "#draw-probs .js-plotly-plot"
GRAPH_A = "#proj-a .proj-graph .js-plotly-plot"


def draw(page, points):
    """One stroke through ``points`` ((x, y) in [0, 1] of the canvas) with real mouse events."""
    if not page.is_visible("#draw-canvas"):
        show(page, "draw")
    canvas = page.locator("#draw-canvas")
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()

    def at(p):
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for p in points[1:]:
        page.mouse.move(*at(p), steps=2)
    page.mouse.up()


def predicted(page):
    """The top class of the Draw card's bars, or None while they are empty."""
    return page.evaluate(
        """sel => { const gd = document.querySelector(sel);
               if (!gd || !gd._fullData || !gd._fullData.length || gd._fullData[0].type !== 'bar') return null;
               const t = gd._fullData[0]; let best = 0;
               for (let i = 1; i < t.x.length; i++) if (t.x[i] > t.x[best]) best = i;
               return String(t.y[best]); }""",
        PROBS,
    )


def wait_predicted(page, digit):
    page.wait_for_function(
        """([sel, digit]) => { const gd = document.querySelector(sel);
               if (!gd || !gd._fullData || !gd._fullData.length || gd._fullData[0].type !== 'bar') return false;
               const t = gd._fullData[0]; let best = 0;
               for (let i = 1; i < t.x.length; i++) if (t.x[i] > t.x[best]) best = i;
               return String(t.y[best]) === digit; }""",
        arg=[PROBS, digit],
        timeout=20_000,
    )


def wait_empty(page):
    page.wait_for_function(
        "sel => { const gd = document.querySelector(sel); return gd && gd._fullData && "
        "(!gd._fullData.length || gd._fullData[0].type !== 'bar'); }",
        arg=PROBS,
        timeout=20_000,
    )


def test_draw_predict_undo_clear_keep(page):
    show(page, "draw")
    # a centred vertical line: the shipped model reads it as 1
    draw(page, [(0.5, 0.15 + 0.7 * t / 12) for t in range(13)])
    wait_predicted(page, "1")
    page.wait_for_function("() => document.querySelector('#preview-caption').textContent.includes('your drawing')")
    assert "drawn by hand" in page.text_content("#preview-caption")
    assert page.is_disabled("#explain-button")
    # the live drawing is a row of the open activation panel (fc2), not kept yet
    show(page, "activations")
    page.wait_for_selector("#panel-fc2 .act-row:has-text('your drawing')")
    show(page, "draw")
    page.click("#draw-undo")
    wait_empty(page)
    assert page.is_disabled("#draw-keep")
    draw(page, [(0.5, 0.2 + 0.6 * t / 12) for t in range(13)])
    wait_predicted(page, "1")
    page.click("#draw-clear")
    wait_empty(page)
    show(page, "activations")
    page.wait_for_function("() => !document.querySelector('#panel-fc2').textContent.includes('your drawing')")
    show(page, "draw")

    # a 0: an ellipse of 40 points
    ellipse = [
        (0.5 + 0.22 * math.sin(2 * math.pi * t / 40), 0.5 - 0.32 * math.cos(2 * math.pi * t / 40)) for t in range(41)
    ]
    draw(page, ellipse)
    wait_predicted(page, "0")
    assert predicted(page) == "0"

    # 8 nearest training images for fc2 (and the input)
    page.wait_for_function("() => document.querySelectorAll('#draw-near-fc2 .thumb').length === 8")
    assert page.locator("#draw-near-input .thumb").count() == 8

    # placed in projection A (PCA of fc2): a starred annotation at the PCA map's coordinates
    page.wait_for_function(
        """sel => { const gd = document.querySelector(sel);
               const a = gd && (gd.layout.annotations || []).filter(a => a.text.includes('your drawing'));
               return a && a.length === 1 && isFinite(a[0].x) && isFinite(a[0].y); }""",
        arg=GRAPH_A,
        timeout=20_000,
    )
    assert "star" in page.text_content("#draw-placed")

    page.click("#draw-keep")
    page.wait_for_function("() => document.querySelector('#preview-caption').textContent.includes('drawing 1')")
    show(page, "activations")
    row = page.locator("#panel-fc2 .act-row", has_text="drawing 1")
    row.wait_for(timeout=20_000)
    assert row.locator(".cell").count() == 64
    show(page, "draw")
    page.click("#draw-clear")
    wait_empty(page)
    show(page, "activations")
    page.wait_for_function("() => !document.querySelector('#panel-fc2').textContent.includes('your drawing')")
    assert page.locator("#panel-fc2 .act-row", has_text="drawing 1").count() == 1


LIT_JS = """() => { const c = document.getElementById('draw-canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let lit = 0; for (let i = 0; i < d.length; i += 4) { if (d[i] > 128) lit++; } return lit; }"""


def test_draw_over_starts_from_the_selected_image_and_keeps_its_pixels(page):
    # the page opens on image 0, train-0, a 5 read as 5 at some confidence
    page.wait_for_function("() => /predicted 5 \\(\\d/.test(document.querySelector('#preview-caption').textContent)")
    confidence = page.text_content("#preview-caption").split("predicted 5 (")[1].split(")")[0]
    page.click("#draw-over")  # opens the Draw view with the image on the canvas
    page.wait_for_selector("#view-draw.active")
    page.wait_for_selector("#draw-canvas[data-over='0']", timeout=BUSY)
    wait_predicted(page, "5")
    # its copy, unmoved, is read exactly as the image itself (a re-centred copy would not be)
    page.wait_for_function(
        "c => document.querySelector('#draw-caption .live-caption').dataset.text.includes(c)", arg=f"5 ({confidence})"
    )
    page.wait_for_function("() => document.querySelector('#preview-caption').textContent.includes('your drawing')")
    assert page.evaluate(LIT_JS) > 2_000  # the digit under the pen: 280 x 280 canvas, a 5 of ~150 of 784 pixels
    before = page.get_attribute("#draw-preview", "src")
    draw(page, [(0.08, 0.92), (0.2, 0.92)])  # a short mark in the empty bottom left corner
    page.wait_for_function("b => document.getElementById('draw-preview').src !== b", arg=before, timeout=20_000)
    wait_predicted(page, "5")
    assert page.get_attribute("#draw-canvas", "data-over") == "0"
    # Clear starts again from a blank canvas
    page.click("#draw-clear")
    wait_empty(page)
    assert page.get_attribute("#draw-canvas", "data-over") is None and page.evaluate(LIT_JS) == 0


SNAPSHOT_JS = """() => {
    const gd = document.querySelector('#draw-probs .js-plotly-plot');
    const row = document.querySelector('#panel-fc2 [data-live-layer]');
    const grid = document.querySelector('#fmap-area .fmap-grid[data-live="1"]');
    return {
        bars: Array.from(gd._fullData[0].x),
        meta: gd.layout.meta && gd.layout.meta.draw,
        caption: document.querySelector('#draw-caption .live-caption').dataset.text,
        preview: document.getElementById('draw-preview').src,
        selected: document.getElementById('preview-image').src,
        row: Array.from(row.querySelectorAll('.cell')).map(c => c.style.background),
        strip: grid.style.getPropertyValue('--sprite'),
    };
}"""


def test_views_follow_the_pen_without_a_dash_callback(page):
    """While the pen moves, the fast path alone (dashboard/live.py) restyles every view that shows the drawing: with
    the Dash callbacks of the strokes held back, the bars, captions, previews, the fc2 panel's live row and the
    feature maps still change, in their views too (hidden while one draws); released, Dash draws the same drawing."""
    show(page, "draw")
    draw(page, [(0.5, 0.15 + 0.7 * t / 12) for t in range(13)])  # the first stroke selects the drawing
    wait_predicted(page, "1")
    show(page, "activations")  # each view draws the live drawing as it opens
    page.wait_for_selector("#panel-fc2 [data-live-layer='fc2']", timeout=BUSY)
    show(page, "network")
    page.wait_for_selector("#fmap-area .fmap-grid[data-live='1']", timeout=BUSY)
    show(page, "draw")
    page.wait_for_function("() => document.querySelector('#preview-caption [data-live]')")
    before = page.evaluate(SNAPSHOT_JS)

    held = []

    def hold(route):
        if "draw-strokes" in (route.request.post_data or ""):
            held.append(route)  # answered at the end
        else:
            route.continue_()

    page.route("**/_dash-update-component*", hold)
    # a 7: a bar across the top joined to the vertical line's top
    draw(page, [(0.25 + 0.25 * t / 8, 0.15) for t in range(9)])
    page.wait_for_function(
        "() => { const c = document.getElementById('draw-canvas').dataset; return +c.shown >= +c.ended; }"
    )
    after = page.evaluate(SNAPSHOT_JS)
    page.wait_for_timeout(600)  # past the 400 ms rest: the Dash update was sent, and is held
    assert held, "the strokes' Dash update was not sent once the pen rested"
    assert page.evaluate(SNAPSHOT_JS)["meta"] == before["meta"]  # Dash has not redrawn the bars
    for view in ("bars", "caption", "preview", "selected", "row", "strip"):
        assert after[view] != before[view], view
    assert len(after["row"]) == 64 and all(c.startswith("rgb") for c in after["row"])
    assert after["caption"].startswith("predicted ")

    for route in held:
        route.continue_()
    page.unroute("**/_dash-update-component*")
    page.wait_for_function(
        "meta => { const gd = document.querySelector('#draw-probs .js-plotly-plot');"
        " return gd.layout.meta && gd.layout.meta.draw > meta; }",
        arg=before["meta"],
        timeout=20_000,
    )
    final = page.evaluate(SNAPSHOT_JS)
    assert final["bars"] == pytest.approx(after["bars"], abs=1e-4)  # the same digit, run again
    assert final["caption"] == after["caption"] and final["preview"] == after["preview"]
