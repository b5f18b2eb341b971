"""The workspace, as a user drives it on all 70,000 images: views with the selection beside each, the address bar as
the page's state (links, back and forward), the selected image ringed in both projections, keyboard, search, exports
and cancelling a projection, in headless chromium."""

import csv
import io
import re

import numpy as np
import pytest

from layerscope.analysis import predictions
from layerscope.dashboard import views
from layerscope.run import Run
from tests.browser.conftest import BUSY, opened, show
from tests.browser.test_dashboard import GRAPH, lasso

pytestmark = pytest.mark.browser


def points(page, panel):
    return page.evaluate(
        """sel => document.querySelector(sel)._fullData
               .filter(t => t.name !== 'misclassified').reduce((n, t) => n + t._length, 0)""",
        GRAPH.format(panel),
    )


# (x, y) of the ring's point, if it is shown over the plot where plotly draws that point (within a pixel)
RING = """sel => { const gd = document.querySelector(sel), el = gd.querySelector('.selected-ring');
    if (!el || el.style.display === 'none') return null;
    const x = +el.dataset.x, y = +el.dataset.y, xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    const dx = Math.abs(parseFloat(el.style.left) - (xa._offset + xa.l2p(x)));
    const dy = Math.abs(parseFloat(el.style.top) - (ya._offset + ya.l2p(y)));
    return dx < 1 && dy < 1 ? [x, y] : null; }"""


def ring(page, panel):
    """(x, y) of the selected image's ring in a projection, or None."""
    return page.evaluate(RING, GRAPH.format(panel))


def where(page, panel, index):
    """(x, y) of image ``index`` in a projection, as plotly drew it."""
    return page.evaluate(
        """([sel, i]) => { for (const t of document.querySelector(sel)._fullData) {
               if (t.name === 'misclassified') continue;
               const k = Array.prototype.indexOf.call(t.customdata, i);
               if (k >= 0) return [t.x[k], t.y[k]]; } return null; }""",
        [GRAPH.format(panel), index],
    )


def selected_index(page):
    return int(re.match(r"(train|test)-(\d+)", page.text_content("#preview-caption")).group(2))


def test_the_first_screen_at_1440x900_shows_a_70000_point_projection(browser_context, server):
    page = browser_context.new_page()
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(server)
    page.wait_for_selector("#proj-a .proj-graph .legendtext", timeout=BUSY)
    assert points(page, "a") == 70_000
    box = page.locator("#proj-a .proj-graph .main-svg").first.bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 900 and box["x"] + box["width"] <= 1440
    assert box["width"] > 400 and box["height"] > 450
    assert page.evaluate("() => document.scrollingElement.scrollTop") == 0
    page.close()


def test_the_selection_sidebar_stays_visible_in_every_view(page):
    for view, _, _ in views.VIEWS:
        show(page, view)
        assert page.locator("main > .view.active").count() == 1
        page.mouse.wheel(0, 3000)  # scrolled down the view: the sidebar stays in sight
        page.wait_for_function("() => document.getElementById('preview-image').getBoundingClientRect().top >= 0")
        box = page.locator("#preview-image").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 1000, (view, box)
        assert page.is_visible("#add-button")


def test_an_address_restores_the_view_image_projections_and_unit_in_a_fresh_browser(playwright, server):
    from tests.browser.conftest import ARGS, CHROMIUM

    url = server + "?view=network&image=123&a_layer=fc1&a_method=pca&b_color=predicted&unit=fc1:5&junk=1"
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    try:
        context = browser.new_context(viewport={"width": 1440, "height": 900})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#view-network.active", timeout=BUSY)
        page.wait_for_function(
            "() => document.querySelector('#preview-caption').textContent.startsWith('train-123')", timeout=BUSY
        )
        page.wait_for_function(
            "() => document.querySelector('#unit-title').textContent.includes('fc1 · neuron 5')", timeout=BUSY
        )
        assert "fc1" in page.text_content("#proj-a .proj-layer")
        assert "predicted label" in page.text_content("#proj-b .proj-color")
        show(page, "explore")
        page.wait_for_function(
            "() => /a_layer=fc1/.test(location.search) && /view=explore/.test(location.search)", timeout=BUSY
        )
        assert "junk" not in page.evaluate("() => location.search")  # what it does not know is dropped
    finally:
        browser.close()


def test_back_and_forward_move_between_views(page):
    show(page, "network")
    show(page, "draw")
    page.wait_for_function("() => location.search.includes('view=draw')")
    page.go_back()
    page.wait_for_selector("#view-network.active")
    page.go_back()
    page.wait_for_selector("#view-explore.active")
    page.go_forward()
    page.wait_for_selector("#view-network.active")
    assert page.locator("main > .view.active").count() == 1


def test_the_selected_image_is_ringed_in_both_projections_and_arrow_keys_step(page):
    thumbs = page.locator("#gallery-body .thumbs").first.locator(".thumb")
    key = re.search(r'"key":(\d+)', thumbs.nth(4).get_attribute("id")).group(1)
    thumbs.nth(4).click()
    page.wait_for_function(f"() => /-{key}true/.test(document.querySelector('#preview-caption').textContent)")
    index = selected_index(page)
    for panel in "ab":
        page.wait_for_function(
            f"([sel, xy]) => {{ const r = ({RING})(sel); return r && r[0] === xy[0] && r[1] === xy[1]; }}",
            arg=[GRAPH.format(panel), where(page, panel, index)],
        )
    before = page.text_content("#preview-caption")
    page.keyboard.press("ArrowRight")
    page.wait_for_function("b => document.querySelector('#preview-caption').textContent !== b", arg=before)
    after = selected_index(page)
    assert after != index and ring(page, "a") == where(page, "a", after)


def test_search_selects_an_image_and_says_what_it_cannot_find(page):
    page.fill("#search", "60005")
    page.press("#search", "Enter")
    page.wait_for_function("() => document.querySelector('#preview-caption').textContent.startsWith('test-60005')")
    page.fill("#search", "no such digit")
    page.press("#search", "Enter")
    page.wait_for_function("() => document.querySelector('#search-error').textContent.includes('no image is called')")


def test_a_brushed_selection_downloads_as_csv_with_the_open_projections(page, mnist_run):
    lasso(page, "a", 3, 40)
    page.wait_for_selector(".gallery .row-title:has-text('brushed in a projection: 40 images')")
    chosen = page.evaluate(
        "sel => Array.from(document.querySelector(sel)._fullData[3].customdata).slice(0, 40)", GRAPH.format("a")
    )
    with page.expect_download() as info:
        page.click("#selection-csv")
    with open(info.value.path()) as f:
        rows = list(csv.DictReader(io.StringIO(f.read())))
    run = Run(mnist_run.path)
    predicted, confidence = predictions(run)
    assert [int(r["index"]) for r in rows] == sorted(chosen)
    for r in rows:
        i = int(r["index"])
        assert r["true_label"] == str(run.labels[i]) and r["predicted"] == str(predicted[i])
        assert float(r["confidence"]) == pytest.approx(confidence[i], abs=1e-6)
        assert float(r["fc2_pca_x"]) == pytest.approx(run.projection("fc2", "pca")[i, 0], abs=1e-4)
        assert "input_pca_y" in r
    assert info.value.suggested_filename.endswith(".csv")
    # the panel's coordinates of all 70,000 images, as .npy
    with page.expect_download() as info:
        page.click("#proj-a .proj-npy")
    coords = np.load(info.value.path())
    assert coords.shape == (70_000, 2) and np.allclose(coords, run.projection("fc2", "pca"))


def test_a_projection_downloads_as_png(page):
    page.locator("#proj-a .proj-graph").hover()
    with page.expect_download(timeout=BUSY) as info:
        page.click("#proj-a .proj-graph .modebar-btn[data-title='Download plot as a PNG']")
    with open(info.value.path(), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert info.value.suggested_filename == "projection-a.png"


@pytest.mark.parametrize(("figure", "name"), [("#confusion", "confusion-matrix"), ("#preview-probs", "prediction")])
def test_the_small_figures_download_as_png_too(page, figure, name):
    page.locator(figure).hover()
    with page.expect_download(timeout=BUSY) as info:
        page.click(f"{figure} .modebar-btn[data-title='Download plot as a PNG']")
    with open(info.value.path(), "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert info.value.suggested_filename == f"{name}.png"


def test_cancelling_a_running_tsne_stops_it(browser_context, server, mnist_run):
    with opened(browser_context, server) as page:
        page.click("#proj-b .proj-method")
        page.get_by_role("option", name="t-SNE", exact=True).click()
        page.wait_for_function(
            "() => document.querySelector('#proj-b .proj-status').textContent.startsWith('computing t-SNE')",
            timeout=BUSY,
        )
        page.click("#proj-b .proj-cancel")
        page.wait_for_function(
            "() => document.querySelector('#proj-b .proj-status').textContent.includes('was cancelled')", timeout=BUSY
        )
        assert not page.is_visible("#proj-b .proj-cancel")
        state_jobs = Run(mnist_run.path).projection_meta("input", "tsne")
        assert state_jobs is None  # nothing written
        # the thread is free: another projection is computed and drawn
        page.click("#proj-b .proj-method")
        page.get_by_role("option", name="LDA", exact=True).click()
        page.wait_for_function(
            "() => /kNN accuracy/.test(document.querySelector('#proj-b .proj-quality').textContent)", timeout=BUSY
        )
