"""The dashboard as a user drives it, on all 70,000 images, in headless chromium."""

import re

import numpy as np
import pytest

from layerscope.analysis import predictions
from layerscope.run import Run
from tests.browser.conftest import BUSY, show

pytestmark = pytest.mark.browser

GRAPH = "#proj-{} .proj-graph .js-plotly-plot"


def traces(page, panel):
    """[(name, number of points, number selected or None)] of a projection graph."""
    return page.evaluate(
        """sel => { const gd = document.querySelector(sel);
               return gd.data.map((t, i) => [t.name, gd._fullData[i]._length,
                   t.selectedpoints == null ? null : t.selectedpoints.length]); }""",
        GRAPH.format(panel),
    )


LIT = """sel => { const gd = document.querySelector(sel);
    const layer = gd.querySelector('canvas.selection-layer');
    const shown = gd.__lit && layer && layer.style.display !== 'none';
    return shown ? gd.__lit.indices.slice().sort((a, b) => a - b) : []; }"""


def lit(page, panel):
    """The images lit up in a projection's selection layer (a selection brushed elsewhere: workspace.js), sorted."""
    return page.evaluate(LIT, GRAPH.format(panel))


def wait_lit(page, panel, count):
    page.wait_for_function(f"sel => ({LIT})(sel).length === {count}", arg=GRAPH.format(panel))
    return lit(page, panel)


def lasso(page, panel, curve, count):
    """Select the first ``count`` points of trace ``curve``, as a lasso would (plotly's own selection event)."""
    page.evaluate(
        """([sel, curve, count]) => {
            const gd = document.querySelector(sel);
            const points = [];
            const custom = gd._fullData[curve].customdata;
            for (let p = 0; p < count; p++) points.push({curveNumber: curve, pointNumber: p, customdata: custom[p]});
            gd.emit('plotly_selected', {points: points});
        }""",
        [GRAPH.format(panel), curve, count],
    )


def test_page_loads_with_all_70000_points(page):
    for panel in "ab":
        shown = traces(page, panel)
        classes = [n for n, _, _ in shown if n != "misclassified"]
        assert classes == [str(d) for d in range(10)]
        assert sum(count for name, count, _ in shown if name != "misclassified") == 70_000
    assert "99." in page.text_content("header")
    quality = page.text_content("#proj-a .proj-quality")
    assert re.search(r"kNN accuracy \(k=10, 2-D\) 0\.\d{3}", quality) and "70,000 points" in quality


def test_page_opens_with_the_first_image_in_the_preview(page):
    # the draw card's empty stroke store announces itself on load; that must not leave the preview blank
    page.wait_for_function("() => /true \\d · predicted/.test(document.querySelector('#preview-caption').textContent)")
    assert page.text_content("#preview-caption").startswith("train-0")
    assert page.get_attribute("#preview-image", "src").startswith("data:image/png")


def test_gallery_click_updates_the_preview(page, mnist_run):
    before = page.text_content("#preview-caption")
    thumbs = page.locator(".gallery .thumbs").first.locator(".thumb")
    thumbs.nth(3).click()
    page.wait_for_function("b => document.querySelector('#preview-caption').textContent !== b", arg=before)
    caption = page.text_content("#preview-caption")
    index = int(re.search(r"(train|test)-(\d+)", caption).group(2))
    assert Run(mnist_run.path).labels[index] == 0  # the gallery opens on digit 0
    assert "true 0" in caption


def test_add_button_adds_a_row_to_the_activation_panel(page):
    before = page.text_content("#preview-caption")
    page.locator(".gallery .thumbs").first.locator(".thumb").nth(5).click()
    page.wait_for_function("b => document.querySelector('#preview-caption').textContent !== b", arg=before)
    name = re.search(r"(train|test)-\d+", page.text_content("#preview-caption")).group(0)
    page.click("#add-button")
    show(page, "activations")
    page.wait_for_selector(f"#panel-fc2 .act-row:has-text('{name}')")
    assert page.locator("#panel-fc2 .act-row").first.locator(".cell").count() == 64


def test_layer_and_method_switch(page, mnist_run):
    before = page.text_content("#proj-a .proj-quality")
    page.click("#proj-a .proj-layer")
    page.get_by_role("option", name="out", exact=True).click()
    page.wait_for_function("b => document.querySelector('#proj-a .proj-quality').textContent !== b", arg=before)
    assert sum(count for name, count, _ in traces(page, "a") if name != "misclassified") == 70_000
    # a method the Run does not have yet is computed in the background, then drawn
    before = page.text_content("#proj-b .proj-quality")
    page.click("#proj-b .proj-method")
    page.get_by_role("option", name="LDA", exact=True).click()
    page.wait_for_function(
        "b => { const q = document.querySelector('#proj-b .proj-quality').textContent;"
        " return q !== b && /kNN accuracy/.test(q); }",
        arg=before,
        timeout=BUSY,
    )
    assert Run(mnist_run.path).projection_meta("input", "lda") is not None
    assert sum(count for name, count, _ in traces(page, "b") if name != "misclassified") == 70_000


def test_lasso_makes_a_group_that_reaches_the_activation_panel_and_the_other_projection(page):
    lasso(page, "a", 3, 250)
    # linked brushing: the same 250 images light up in projection B, the rest faded behind them
    brushed = page.evaluate(
        "sel => Array.from(document.querySelector(sel)._fullData[3].customdata.slice(0, 250))", GRAPH.format("a")
    )
    assert wait_lit(page, "b", 250) == sorted(brushed)
    assert (
        page.evaluate("sel => document.querySelector(sel + ' .gl-container').style.opacity", GRAPH.format("b")) == "0.1"
    )
    assert lit(page, "a") == []  # the panel brushed in shows plotly's own lasso
    show(page, "activations")
    page.wait_for_selector("#panel-fc2 .act-row:has-text('brushed points')")
    # ... and in the gallery
    show(page, "explore")
    page.wait_for_selector(".gallery .row-title:has-text('brushed in a projection: 250 images')")
    assert page.locator(".gallery .brushed-row .thumb").count() == 60
    page.fill("#group-name", "my threes")
    page.click("#group-save")
    page.wait_for_selector(".group:has-text('my threes')")
    assert "250 images" in page.text_content(".group:has-text('my threes')")
    page.locator(".group:has-text('my threes')").get_by_role("button", name="add to panels").click()
    show(page, "activations")
    page.wait_for_selector("#panel-fc2 .act-row:has-text('group my threes')")


# every image lit in a panel sits where that panel's current figure draws it
LIT_IN_PLACE = """sel => { const gd = document.querySelector(sel);
    if (!gd.__lit || gd.__lit.data !== gd.data) return false;
    const at = new Map();
    gd._fullData.filter(t => t.name !== 'misclassified')
        .forEach(t => t.customdata.forEach((c, i) => at.set(c, [t.x[i], t.y[i]])));
    return gd.__lit.indices.every((c, k) => at.get(c)[0] === gd.__lit.x[k] && at.get(c)[1] === gd.__lit.y[k]); }"""


def test_the_lit_selection_follows_the_other_panels_new_figure_and_escape_clears_it(page):
    lasso(page, "a", 2, 30)
    brushed = wait_lit(page, "b", 30)
    page.evaluate("sel => { window.__before = document.querySelector(sel).data; }", GRAPH.format("b"))
    page.click("#proj-b .proj-layer")
    page.get_by_role("option", name="fc1", exact=True).click()
    page.wait_for_function(
        f"sel => document.querySelector(sel).data !== window.__before && ({LIT_IN_PLACE})(sel)",
        arg=GRAPH.format("b"),
        timeout=BUSY,
    )
    assert lit(page, "b") == brushed  # the same images, where fc1's projection puts them
    page.evaluate("() => document.activeElement.blur()")  # Escape in the layer dropdown closes only the dropdown
    page.keyboard.press("Escape")
    page.wait_for_function(f"sel => ({LIT})(sel).length === 0", arg=GRAPH.format("b"))
    assert page.evaluate("sel => document.querySelector(sel + ' .gl-container').style.opacity", GRAPH.format("b")) == ""


def test_explain_a_misclassification(page, mnist_run):
    page.locator(".gallery .thumbs.wrong .thumb").first.click()
    page.wait_for_function("() => /misclassified/.test(document.querySelector('#preview-caption').textContent)")
    caption = page.text_content("#preview-caption")
    index = int(re.search(r"(train|test)-(\d+)", caption).group(2))
    predicted, _ = predictions(Run(mnist_run.path))
    page.click("#explain-button")
    show(page, "activations")
    page.wait_for_selector("#panel-fc2 .act-row:has-text('average')")
    rows = page.locator("#panel-fc2 .row-name").all_text_contents()
    assert any(f"-{index} " in r for r in rows)
    assert "average 0" in rows and f"average {predicted[index]}" in rows
    assert "explain" in page.text_content("#panel-fc2 .panel-head")
    assert "departs from its class" in page.text_content("#panel-fc2")


def test_confusion_cell_filters_the_gallery(page, mnist_run):
    run = Run(mnist_run.path)
    predicted, _ = predictions(run)
    labels, split = np.asarray(run.labels), np.asarray(run.split)
    expected = int(((split == 1) & (labels == 4) & (predicted == 9)).sum())
    page.evaluate(
        """() => document.querySelector('#confusion .js-plotly-plot')
               .emit('plotly_click', {points: [{x: '9', y: '4', curveNumber: 0}]})"""
    )
    page.wait_for_selector(".gallery .row-title:has-text('true 4, predicted 9')")
    assert page.locator("#gallery-body .thumb").count() == min(expected, 60)
    assert f"{expected:,} images" in page.text_content("#gallery-info")
    members = np.flatnonzero((split == 1) & (labels == 4) & (predicted == 9)).tolist()
    assert wait_lit(page, "a", expected) == members == wait_lit(page, "b", expected)


def test_double_click_adds_the_image(page):
    thumb = page.locator(".gallery .thumbs").first.locator(".thumb").nth(7)
    key = re.search(r'"key":(\d+)', thumb.get_attribute("id")).group(1)
    thumb.dblclick()
    show(page, "activations")
    page.wait_for_selector(f"#panel-fc2 .act-row:has-text('-{key} ')")


def test_hover_shows_the_image(page):
    page.evaluate(
        """sel => { const gd = document.querySelector(sel);
               gd.emit('plotly_hover', {points: [{curveNumber: 2, pointNumber: 10}]}); }""",
        GRAPH.format("a"),
    )
    page.wait_for_function(
        "() => (document.querySelector('#proj-a .proj-hover-img').src || '').startsWith('data:image/png')"
    )
    text = page.text_content("#proj-a .proj-hover-text")
    assert re.search(r"(train|test)-\d+true 2predicted \d", text), text
