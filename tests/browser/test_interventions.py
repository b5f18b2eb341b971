"""Interventions, as a user drives them: switching units off (ablation) and attributions, in headless chromium."""

import re

import numpy as np
import pytest

from layerscope.ablation import Ablation

pytestmark = pytest.mark.browser


def choose(page, dropdown, option):
    page.locator(dropdown).click()
    page.get_by_role("dialog").get_by_role("option", name=option, exact=True).click()


def percent(page, selector):
    return float(re.sub(r"[^0-9.]", "", page.text_content(selector)))


def test_switching_off_all_of_fc2_drops_test_accuracy_to_chance(page):
    page.locator(".ablation-card").scroll_into_view_if_needed()
    assert "No unit is switched off" in page.text_content("#abl-list")
    choose(page, "#abl-layer", "fc2")
    page.fill("#abl-units", "0-63")
    page.fill("#abl-scale", "0")
    page.click("#abl-add")
    page.wait_for_selector("#abl-list .abl-item")
    assert "fc2 0–63 × 0" in page.text_content("#abl-list")
    page.wait_for_selector("#abl-summary .acc-after", timeout=60_000)
    assert percent(page, "#abl-summary .acc-before") >= 97
    assert percent(page, "#abl-summary .acc-after") <= 20
    assert "test predictions changed" in page.text_content("#abl-summary")
    assert "→" in page.text_content("#abl-image")  # the selected image's prediction before -> after
    page.wait_for_function(
        """() => { const gd = document.querySelector('#abl-confusion .js-plotly-plot');
               return gd && gd._fullData.length === 1 && gd._fullData[0].type === 'heatmap'; }"""
    )
    bars = page.evaluate("() => document.querySelector('#abl-classes .js-plotly-plot')._fullData.map(t => t.x.length)")
    assert bars == [10, 10]  # before and after, per class
    page.click("#abl-reset")
    page.wait_for_function("() => document.querySelector('#abl-list').textContent.includes('No unit is switched off')")
    assert page.locator("#abl-list .abl-item").count() == 0


def test_bad_units_are_an_error_and_leave_the_list_alone(page):
    page.locator(".ablation-card").scroll_into_view_if_needed()
    choose(page, "#abl-layer", "fc2")
    page.fill("#abl-units", "60-70")
    page.click("#abl-add")
    page.wait_for_function("() => document.querySelector('#abl-error').textContent.length > 0")
    assert page.locator("#abl-list .abl-item").count() == 0


def test_the_unit_card_switches_its_unit_off(page):
    page.locator("#unit-layer").scroll_into_view_if_needed()
    choose(page, "#unit-layer", "conv2")
    page.fill("#unit-index", "7")
    page.wait_for_function("() => document.querySelector('#unit-title').textContent.includes('conv2 · channel 7')")
    page.click("#unit-ablate")
    page.wait_for_selector("#abl-list .abl-item")
    assert "conv2 7 × 0" in page.text_content("#abl-list")
    assert page.locator("#abl-list .abl-item").count() == 1


def test_attribution_overlay_follows_the_method_and_the_sanity_check_shows_steps(page):
    page.locator(".attribution-card").scroll_into_view_if_needed()
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
    page.wait_for_selector("#attr-sanity-area .sanity-img", timeout=60_000)
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
        before, after = state.ablated_probs(key, off)
        assert before.shape == after.shape == (10,)
        assert np.isclose(before.sum(), 1, atol=1e-4) and not np.allclose(before, after)
    assert state.ablated_probs("no such image", off) is None
