"""A drawing placed into a projection other than PCA: the placement is rebuilt in the background, then the star
appears, in headless chromium over all 70,000 MNIST images."""

import pytest

from tests.browser.conftest import BUSY, show
from tests.browser.test_draw import draw, wait_predicted

pytestmark = pytest.mark.browser

GRAPH_A = "#proj-a .proj-graph .js-plotly-plot"


# the class names of the k plotted points nearest to the drawing's star in projection A (null: no star)
STAR_NEIGHBOURS = """([sel, k]) => { const gd = document.querySelector(sel);
    const a = ((gd && gd.layout.annotations) || []).filter(a => a.text.includes('your drawing'));
    if (a.length !== 1 || !isFinite(a[0].x) || !isFinite(a[0].y)) return null;
    const near = [];
    for (const t of gd._fullData) {
        if (t.name === 'misclassified') continue;
        for (let i = 0; i < t._length; i++) near.push([(t.x[i] - a[0].x) ** 2 + (t.y[i] - a[0].y) ** 2, t.name]);
    }
    near.sort((p, q) => p[0] - q[0]);
    return near.slice(0, k).map(p => p[1]); }"""


def test_drawing_is_starred_in_an_lda_projection(page):
    # projection A (fc2) switched to LDA: computed in the background (a second), then drawn
    page.click("#proj-a .proj-method")
    page.get_by_role("option", name="LDA", exact=True).click()
    page.wait_for_function(
        "() => /kNN accuracy/.test(document.querySelector('#proj-a .proj-quality').textContent)"
        " && document.querySelector('#proj-a .proj-status').textContent === ''",
        timeout=BUSY,
    )
    # a centred vertical line: the shipped model reads it as 1
    show(page, "draw")
    draw(page, [(0.5, 0.15 + 0.7 * t / 12) for t in range(13)])
    wait_predicted(page, "1")
    show(page, "explore")
    # the LDA map is refitted in the background (the note says so meanwhile), then the star comes with a poll, among
    # the 1s of the LDA (a star left from an earlier drawing on the shared server would sit elsewhere)
    page.wait_for_function(
        f"args => {{ const near = ({STAR_NEIGHBOURS})(args);"
        " return near !== null && near.filter(n => n === '1').length > near.length / 2; }",
        arg=[GRAPH_A, 25],
        timeout=BUSY,
    )
    page.wait_for_function(
        "() => document.querySelector('#draw-placed').textContent.includes('projection A: marked with a star')"
    )
    assert page.text_content("#proj-a .proj-status") == ""  # no placement message is left behind
    # the star follows the next stroke (a Patch of the annotations) and goes with the drawing
    show(page, "draw")
    page.click("#draw-clear")
    page.wait_for_function(
        """sel => { const gd = document.querySelector(sel);
               return !(gd.layout.annotations || []).some(a => a.text.includes('your drawing')); }""",
        arg=GRAPH_A,
        timeout=20_000,
    )
    page.wait_for_function("() => document.querySelector('#draw-placed').textContent === ''", timeout=20_000)
