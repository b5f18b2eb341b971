"""Interventions, as a user drives them: switching units off (ablation) and attributions, in headless chromium."""

import re

import numpy as np
import pytest

from layerscope.ablation import Ablation
from tests.browser.conftest import BUSY, NET, NET_DRAWN, click_node, node_position, show

pytestmark = pytest.mark.browser


def choose(page, dropdown, option):
    page.locator(dropdown).click()
    page.get_by_role("dialog").get_by_role("option", name=option, exact=True).click()


def percent(page, selector):
    return float(re.sub(r"[^0-9.]", "", page.text_content(selector)))


def test_switching_off_all_of_fc2_drops_test_accuracy_to_chance(page):
    show(page, "intervene")
    assert "No unit is switched off" in page.text_content("#abl-list")
    choose(page, "#abl-layer", "fc2")
    page.fill("#abl-units", "0-63")
    page.fill("#abl-scale", "0")
    page.click("#abl-add")
    page.wait_for_selector("#abl-list .abl-item")
    assert "fc2 0–63 × 0" in page.text_content("#abl-list")
    page.wait_for_selector("#abl-summary .acc-after", timeout=BUSY)
    assert percent(page, "#abl-summary .acc-before") >= 97
    assert percent(page, "#abl-summary .acc-after") <= 20
    assert "test predictions changed" in page.text_content("#abl-summary")
    assert "→" in page.text_content("#abl-image")  # the selected image's prediction before -> after
    page.wait_for_function(
        """() => { const gd = document.querySelector('#abl-confusion .js-plotly-plot');
               return gd && gd._fullData.length === 1 && gd._fullData[0].type === 'heatmap'; }"""
    )
    chart = page.evaluate(
        """() => { const gd = document.querySelector('#abl-classes .js-plotly-plot');
               return {bars: gd._fullData.map(t => t.x.length), y: Array.from(gd._fullData[0].y),
                       range: gd._fullLayout.yaxis.range}; }"""
    )
    assert chart["bars"] == [10]  # one bar per class: its accuracy after minus before, in points
    low, high = chart["range"]
    assert low == -high and high >= max(abs(y) for y in chart["y"])  # symmetric, every bar inside
    assert np.mean(chart["y"]) <= -50  # from 97% and more to 20% and less: the classes' accuracy falls
    page.click("#abl-reset")
    page.wait_for_function("() => document.querySelector('#abl-list').textContent.includes('No unit is switched off')")
    assert page.locator("#abl-list .abl-item").count() == 0


def test_bad_units_are_an_error_and_leave_the_list_alone(page):
    show(page, "intervene")
    choose(page, "#abl-layer", "fc2")
    page.fill("#abl-units", "60-70")
    page.click("#abl-add")
    page.wait_for_function("() => document.querySelector('#abl-error').textContent.length > 0")
    assert page.locator("#abl-list .abl-item").count() == 0


def test_the_unit_card_switches_its_unit_off(page):
    show(page, "network")
    choose(page, "#unit-layer", "conv2")
    page.fill("#unit-index", "7")
    page.wait_for_function("() => document.querySelector('#unit-title').textContent.includes('conv2 · channel 7')")
    page.click("#unit-ablate")  # opens the Intervene view, where the list is
    page.wait_for_selector("#view-intervene.active #abl-list .abl-item")
    assert "conv2 7 × 0" in page.text_content("#abl-list")
    assert page.locator("#abl-list .abl-item").count() == 1


LIST_HAS = "t => document.querySelector('#abl-list').textContent.includes(t)"
NO_UNIT_OFF = "() => document.querySelector('#abl-list').textContent.includes('No unit is switched off')"


def crosses(page):
    """[[layer, unit]] of the crosses the network graph draws over switched-off units."""
    return page.evaluate(
        """sel => { const t = document.querySelector(sel).data.find(t => t.name === 'switched off');
               return t ? Array.from(t.customdata || []) : null; }""",
        NET,
    )


def click_mode_on(page, then):
    """Switch "Click units to switch them off" on (in the Intervene view), then open the view ``then``."""
    show(page, "intervene")
    page.check("#abl-mode input")
    page.wait_for_function("() => document.body.classList.contains('abl-mode-on')")
    show(page, then)


def test_graph_clicks_switch_units_off_and_back_on_instead_of_opening_the_unit_card(page):
    click_mode_on(page, "network")
    page.wait_for_function(NET_DRAWN)
    # the unit card is drawn once the Network view shows
    page.wait_for_function("() => document.querySelector('#unit-title').textContent.length > 0")
    title = page.text_content("#unit-title")
    assert crosses(page) == []
    click_node(page, "fc1", 5)
    page.wait_for_function(LIST_HAS, arg="fc1 5 × 0")
    page.wait_for_selector("#abl-summary .acc-after", timeout=BUSY, state="attached")  # in the Intervene view
    assert percent(page, "#abl-summary .acc-before") >= 97
    assert "test predictions changed" in page.text_content("#abl-summary")
    page.wait_for_function(
        f"() => {{ const t = document.querySelector('{NET}').data.at(-1); return t.x.length === 1; }}"
    )
    assert crosses(page) == [["fc1", 5]]
    assert page.text_content("#unit-title") == title  # the unit card stayed where it was
    click_node(page, "fc1", 5)  # the cross over it, now: the same unit, back on
    page.wait_for_function(NO_UNIT_OFF)
    page.wait_for_function(f"() => document.querySelector('{NET}').data.at(-1).x.length === 0")
    # a collapsed conv layer's node opens into its channels, and says so; a channel then switches off
    click_node(page, "conv1", -1)
    page.wait_for_function("() => document.querySelector('#abl-error').textContent.includes('opens it into')")
    page.wait_for_function(
        f"""() => {{ const t = document.querySelector('{NET}').data.find(t => t.name === 'conv1');
               return t && t.customdata.length === 16; }}"""
    )
    click_node(page, "conv1", 3)
    page.wait_for_function(LIST_HAS, arg="conv1 3 × 0")
    assert page.text_content("#abl-error") == ""
    assert page.locator("#abl-list .abl-item").count() == 1


def test_box_select_in_the_graph_switches_several_units_off(page):
    click_mode_on(page, "network")
    page.wait_for_function(NET_DRAWN)
    page.locator("#net-graph").hover()
    page.click("#net-graph .modebar-btn[data-val='select']")  # the graph's own box select
    page.locator(NET).scroll_into_view_if_needed()
    (x, top), (_, bottom) = node_position(page, "fc2", 0), node_position(page, "fc2", 3)
    page.mouse.move(x - 8, top - 4)
    page.mouse.down()
    page.mouse.move(x + 8, (top + bottom) / 2, steps=5)
    page.mouse.move(x + 8, bottom + 4, steps=5)
    page.mouse.up()
    page.wait_for_function(LIST_HAS, arg="fc2 0–3 × 0")
    assert page.locator("#abl-list .abl-item").count() == 1
    page.wait_for_function(f"() => document.querySelector('{NET}').data.at(-1).x.length === 4")


def test_activation_panel_cells_switch_units_off_and_back_on(page):
    show(page, "activations")
    choose(page, "#panel-layer", "fc1")
    page.click("#panel-open")
    page.wait_for_selector("#panel-fc1")
    page.click("#add-button")  # a row: the selected image's activations
    cell = page.locator("#panel-fc1 .act-row").first.locator(".cell[data-unit='12']")
    cell.wait_for()
    cell.click()  # the mode is off: nothing happens
    click_mode_on(page, "activations")
    assert "No unit is switched off" in page.text_content("#abl-list")
    assert page.evaluate("() => getComputedStyle(document.querySelector('#panel-fc1 .cell')).cursor") == "pointer"
    cell.click()
    page.wait_for_function(LIST_HAS, arg="fc1 12 × 0")
    page.mouse.move(0, 0)
    outline = "() => getComputedStyle(document.querySelector('#panel-fc1 .cell[data-unit=\"12\"]')).outlineColor"
    page.wait_for_function(f"() => ({outline})() === 'rgb(214, 39, 40)'")  # outlined, switched off
    page.wait_for_selector("#abl-summary .acc-after", timeout=BUSY, state="attached")
    cell.click()
    page.wait_for_function(NO_UNIT_OFF)
    page.mouse.move(0, 0)
    page.wait_for_function(f"() => ({outline})() !== 'rgb(214, 39, 40)'")
    show(page, "intervene")
    page.uncheck("#abl-mode input")
    page.wait_for_function("() => !document.body.classList.contains('abl-mode-on')")


def test_attribution_overlay_follows_the_method_and_the_sanity_check_shows_steps(page):
    show(page, "intervene")
    page.wait_for_function(
        "() => { const i = document.querySelector('#attr-overlay'); return i && i.src.startsWith('data:image/png'); }"
    )
    saliency = page.get_attribute("#attr-overlay", "src")
    assert "saliency" in page.text_content("#attr-info")
    assert not page.is_visible("#attr-layer-box")  # Grad-CAM's layer only
    choose(page, "#attr-method", "Grad-CAM")
    page.wait_for_function("s => document.querySelector('#attr-overlay').src !== s", arg=saliency)
    assert page.is_visible("#attr-layer-box")
    page.wait_for_function("() => document.querySelector('#attr-info').textContent.includes('Grad-CAM')")
    assert "conv2" in page.text_content("#attr-info")
    page.check("#attr-sanity input")
    page.wait_for_selector("#attr-sanity-area .sanity-img", timeout=BUSY)
    assert page.locator("#attr-sanity-area .sanity-img").count() >= 2
    page.wait_for_function(
        """() => { const gd = document.querySelector('#attr-sanity-fig .js-plotly-plot');
               return gd && gd._fullData && gd._fullData.length === 2; }"""
    )
    assert "does not explain the weights" in page.text_content("#attr-sanity-area")


def test_selected_image_prediction_under_ablation_for_indices_and_class_means(mnist_run):
    from layerscope.dashboard import create_app

    state = create_app(mnist_run).layerscope_state
    off = [Ablation("fc2", tuple(range(64)))]
    for key in (0, "mean:3"):
        before, after = state.interventions.ablated_probs(key, off)
        assert before.shape == after.shape == (10,)
        assert np.isclose(before.sum(), 1, atol=1e-4) and not np.allclose(before, after)
    assert state.interventions.ablated_probs("no such image", off) is None
