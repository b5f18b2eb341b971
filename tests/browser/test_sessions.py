"""Two visitors at once, in two browser contexts of a real chromium on one server: what one draws and keeps never
shows in the other's page, while a projection computed for one is drawn in both."""

import math
import re

import pytest

from layerscope.run import Run
from tests.browser.conftest import ARGS, BUSY, CHROMIUM, opened, show
from tests.browser.test_draw import draw, wait_predicted

pytestmark = pytest.mark.browser

LINE = [(0.5, 0.15 + 0.7 * t / 12) for t in range(13)]  # the shipped model reads it as 1
ELLIPSE = [  # read as 0
    (0.5 + 0.22 * math.sin(2 * math.pi * t / 40), 0.5 - 0.32 * math.cos(2 * math.pi * t / 40)) for t in range(41)
]


@pytest.fixture
def two_visitors(playwright, server):
    """Pages of two browser contexts (separate cookies, storage and cache), both opened on the server."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        contexts = [browser.new_context(viewport={"width": 1500, "height": 1000}) for _ in range(2)]
        with opened(contexts[0], server) as a, opened(contexts[1], server) as b:
            yield a, b
    finally:
        browser.close()


def add_gallery_image(page, nth):
    """Double-click the gallery's ``nth`` thumbnail, which adds its row to the panels (a redraw of them); its key."""
    show(page, "explore")
    thumb = page.locator(".gallery .thumbs").first.locator(".thumb").nth(nth)
    key = re.search(r'"key":(\d+)', thumb.get_attribute("id")).group(1)
    thumb.dblclick()
    show(page, "activations")
    page.wait_for_selector(f"#panel-fc2 .act-row:has-text('-{key} ')", timeout=BUSY)
    return key


def choose(page, dropdown, option):
    page.click(dropdown)
    page.get_by_role("option", name=option, exact=True).click()


def test_a_drawing_and_kept_drawings_stay_in_the_page_that_made_them(two_visitors):
    a, b = two_visitors
    draw(a, LINE)
    wait_predicted(a, "1")
    show(a, "activations")
    a.wait_for_selector("#panel-fc2 .act-row:has-text('your drawing')", timeout=BUSY)
    # B's panels are redrawn (an image added) while A's drawing exists: it is not among B's rows
    add_gallery_image(b, 2)
    assert "your drawing" not in b.text_content("#panel-fc2")
    assert "drawn by hand" not in b.text_content("#preview-caption")
    # A keeps its 1; B draws a 0 and keeps it: each page's first kept drawing is its "drawing 1", its own digit
    show(a, "draw")
    a.click("#draw-keep")
    show(a, "activations")
    a.wait_for_selector("#panel-fc2 .act-row:has-text('drawing 1')", timeout=BUSY)
    draw(b, ELLIPSE)
    wait_predicted(b, "0")
    b.click("#draw-keep")
    b.wait_for_function(
        "() => document.querySelector('#preview-caption').textContent.includes('drawing 1')", timeout=BUSY
    )
    assert "predicted 0" in b.get_attribute("#preview-caption .live-caption", "data-text")  # shown by CSS
    show(b, "activations")
    b.wait_for_selector("#panel-fc2 .act-row:has-text('drawing 1')", timeout=BUSY)
    assert b.locator("#panel-fc2 .act-row", has_text="drawing 1").count() == 1
    show(b, "draw")
    b.click("#draw-clear")  # B's live 0 goes; its kept one stays, and A's live 1 never came
    show(b, "activations")
    b.wait_for_function("() => !document.querySelector('#panel-fc2').textContent.includes('your drawing')")
    # A's page, redrawn after B kept and cleared its 0, has its own kept 1 and its live 1 still: B's Clear cleared B's
    add_gallery_image(a, 4)
    assert a.locator("#panel-fc2 .act-row", has_text="drawing 1").count() == 1
    assert a.locator("#panel-fc2 .act-row", has_text="your drawing").count() == 1


def test_a_projection_computed_while_both_pages_wait_is_drawn_in_both(two_visitors, mnist_run):
    """Both pages ask for the LDA of fc1 (not in the Run yet); one background job computes it, and each page redraws
    when it lands: one page's redraw must not stop the other's polling."""
    a, b = two_visitors
    assert Run(mnist_run.path).projection_meta("fc1", "lda") is None
    for page in (a, b):
        choose(page, "#proj-a .proj-layer", "fc1")
    for page in (a, b):
        choose(page, "#proj-a .proj-method", "LDA")
    for page in (a, b):
        page.wait_for_function(
            "() => /kNN accuracy/.test(document.querySelector('#proj-a .proj-quality').textContent)"
            " && document.querySelector('#proj-a .proj-status').textContent === ''",
            timeout=BUSY,
        )
    assert a.text_content("#proj-a .proj-quality") == b.text_content(
        "#proj-a .proj-quality"
    )  # the same stored projection
    assert Run(mnist_run.path).projection_meta("fc1", "lda") is not None


def test_a_group_a_selection_and_an_unsaved_switch_off_list_stay_in_their_page(two_visitors):
    """What a visitor builds in the page (a brushed selection, a group, units switched off but not saved) is the
    page's own: the other visitor's page never shows it, even reloaded; the group survives a reload of its own tab."""
    from tests.browser.test_dashboard import lasso

    a, b = two_visitors
    lasso(a, "a", 3, 30)
    a.wait_for_selector(".gallery .row-title:has-text('brushed in a projection: 30 images')")
    a.fill("#group-name", "only in a")
    a.click("#group-save")
    a.wait_for_selector(".group:has-text('only in a')")
    show(a, "intervene")
    choose(a, "#abl-layer", "fc2")
    a.fill("#abl-units", "3")
    a.click("#abl-add")
    a.wait_for_selector("#abl-list .abl-item")
    for page in (b, a):
        page.reload()  # a reopens on the Intervene view its address names: its projections drawn, though hidden
        page.wait_for_selector("#proj-a .proj-graph .legendtext", state="attached", timeout=BUSY)
        page.wait_for_selector("#group-list .hint, #group-list .group", state="attached", timeout=BUSY)
    assert "only in a" not in b.text_content("#group-list")
    assert "brushed" not in b.text_content("#gallery-brushed")
    show(b, "intervene")
    assert "No unit is switched off" in b.text_content("#abl-list")
    assert "only in a" in a.text_content("#group-list")  # this tab's, kept over its reload
