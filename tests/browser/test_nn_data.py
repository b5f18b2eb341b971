"""A hand-made NN_data.json (Keras layer names, partial layers, a projection of some instances) in the dashboard."""

import numpy as np
import pytest

from layerscope.interop import FILE_METHOD
from layerscope.run import open_run
from tests import nn_data
from tests.browser.conftest import opened, serving, show

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def json_run(tmp_path_factory):
    directory = tmp_path_factory.mktemp("json")
    return open_run(nn_data.write(directory / "NN_data.json"), cache_dir=directory / "cache")


@pytest.fixture(scope="module")
def json_server(json_run):
    with serving(json_run) as url:
        yield url


@pytest.fixture
def json_page(browser_context, json_server):
    with opened(browser_context, json_server) as page:
        yield page


def points(page, panel):
    """Dataset indices drawn in a projection panel, from the traces' customdata (misclassified ring excluded)."""
    return page.evaluate(
        """sel => { const gd = document.querySelector(sel);
               return gd._fullData.filter(t => t.name !== 'misclassified')
                   .flatMap(t => Array.from(t.customdata)); }""",
        f"#proj-{panel} .proj-graph .js-plotly-plot",
    )


def test_opens_with_the_files_projections(json_page, json_run):
    page = json_page
    assert "(no model)" in page.text_content("header")
    # panel A: dense_1, which the file projects for every instance; panel B: conv2d_1, for every other instance
    assert sorted(points(page, "a")) == list(range(40))
    assert sorted(points(page, "b")) == list(range(0, 40, 2))
    assert "20 points" in page.text_content("#proj-b .proj-quality")
    assert "trustworthiness" not in page.text_content(
        "#proj-b .proj-quality"
    )  # nothing to compare a bare projection with
    # a projection-only layer offers only the file's projection; a layer with activations offers the others too
    page.click("#proj-b .proj-method")
    page.get_by_role("dialog").get_by_role("option").first.wait_for()
    assert page.get_by_role("dialog").get_by_role("option").all_text_contents() == ["from file"]
    page.keyboard.press("Escape")
    page.click("#proj-a .proj-method")
    page.get_by_role("dialog").get_by_role("option").first.wait_for()
    assert page.get_by_role("dialog").get_by_role("option").all_text_contents() == [
        "from file",
        "PCA",
        "t-SNE",
        "UMAP",
        "LDA",
        "Isomap",
    ]
    page.keyboard.press("Escape")
    coordinates = page.evaluate(
        """sel => { const gd = document.querySelector(sel); const t = gd._fullData[0];
               return [Array.from(t.customdata), Array.from(t.x), Array.from(t.y)]; }""",
        "#proj-b .proj-graph .js-plotly-plot",
    )
    expected = json_run.projection("conv2d_1", FILE_METHOD)
    for index, x, y in zip(*coordinates, strict=True):
        assert np.allclose(expected[index], [x, y])
    # the Network view says plainly why its figures are absent
    show(page, "network")
    assert "holds the network's activations and projections but not its weights" in page.text_content("#no-model")


def test_layer_without_the_files_projection_is_computed(json_page):
    """dense_2 has activations but no projection in the file: choosing it switches to PCA, computed from them."""
    page = json_page
    page.click("#proj-b .proj-layer")
    page.get_by_role("dialog").get_by_role("option", name="dense_2", exact=True).click()
    page.wait_for_function("() => document.querySelector('#proj-b .proj-quality').textContent.includes('40 points')")
    assert sorted(points(page, "b")) == list(range(40))
    assert page.text_content("#proj-b .proj-method").strip() == "PCA"


def test_instances_and_the_files_averages(json_page):
    page = json_page
    before = page.text_content("#preview-caption")
    page.locator(".gallery .thumbs").first.locator(".thumb").nth(2).click()  # after the average 0: x_0, x_10
    page.wait_for_function("b => document.querySelector('#preview-caption').textContent !== b", arg=before)
    caption = page.text_content("#preview-caption")
    assert caption.startswith("x_10") and "true 0" in caption and "%" not in caption
    assert "predicted class only" in page.text_content("#preview-probs")
    # the file's per-digit averages are the "average" rows, with the file's own values
    show(page, "activations")
    page.click("text=Add per-digit averages")
    page.wait_for_selector("#panel-dense_1 .act-row:has-text('average 9')", timeout=20_000)
    raw = nn_data.hand_made()
    row = page.locator("#panel-dense_1 .act-row:has-text('average 3')").locator(".cell")
    titles = sorted(row.nth(u).get_attribute("title") for u in range(8))
    assert titles == sorted(f"unit {u}: {v:.3f}" for u, v in enumerate(raw["activations"]["dense_1"]["avg_3"]))
