"""Inside the network, as a user drives it: the weights graph, unit cards and feature maps, in headless chromium."""

import json
import os
import re
import shutil

import pytest

from layerscope.run import Run
from tests.browser.conftest import BUSY, NET, NET_DRAWN, click_node, opened, serving, settle, show

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("LAYERSCOPE_SCREENSHOTS")  # a directory: save screenshots there to look at them


def shot(page, locator, name, sizes=()):
    """Save a screenshot of ``locator``; with ``sizes`` ((width, height), ...), one at each viewport size."""
    if not SHOTS:
        return
    if not sizes:
        page.locator(locator).screenshot(path=os.path.join(SHOTS, f"{name}.png"))
        return
    before = page.viewport_size
    for w, h in sizes:
        page.set_viewport_size({"width": w, "height": h})
        page.locator(locator).scroll_into_view_if_needed()
        page.screenshot(path=os.path.join(SHOTS, f"{name}-{w}x{h}.png"))
    page.set_viewport_size(before)


SIZES = ((1440, 900), (1920, 1080))


def choose_unit(page, layer, unit, title):
    page.locator("#unit-layer").click()
    page.get_by_role("dialog").get_by_role("option", name=layer, exact=True).click()
    page.fill("#unit-index", str(unit))
    page.wait_for_function(f"() => document.querySelector('#unit-title').textContent.includes('{title}')")


def node_count(page, layer):
    """Number of nodes drawn for ``layer`` in the network graph."""
    return page.evaluate(
        """([sel, layer]) => { const gd = document.querySelector(sel);
               const t = gd.data.find(t => t.mode.startsWith('markers') && t.name === layer);
               return t ? t.customdata.length : 0; }""",
        [NET, layer],
    )


def feature_visualisation(page):
    """Ask for the unit card's feature visualisation (it is computed only when asked) and wait until it is drawn."""
    page.wait_for_function(
        """() => document.querySelector('#unit-featurevis img') ||
                 !document.querySelector('#unit-featurevis-start').disabled""",
        timeout=BUSY,
    )
    if page.locator("#unit-featurevis img").count() == 0:
        assert "Not computed yet" in page.text_content("#unit-featurevis")
        page.click("#unit-featurevis-start")
    page.wait_for_selector("#unit-featurevis img", timeout=BUSY)  # 3 starts, naive and accentuated
    assert page.is_disabled("#unit-featurevis-start")


@pytest.fixture
def inside(page):
    show(page, "network")
    page.wait_for_function(NET_DRAWN)
    return page


def test_conv_layer_expands_into_channels_with_kernel_thumbnails(inside):
    page = inside
    assert node_count(page, "conv1") == 1 and node_count(page, "fc1") == 64
    edges_before = page.evaluate(f"() => document.querySelector('{NET}').data.filter(t => t.name === 'weights').length")
    assert edges_before > 0
    click_node(page, "conv1", -1)
    page.wait_for_function(
        """sel => { const gd = document.querySelector(sel);
               const t = gd.data.find(t => t.mode.startsWith('markers') && t.name === 'conv1');
               return t && t.customdata.length === 16; }""",
        arg=NET,
    )
    kernels = page.evaluate(f"() => (document.querySelector('{NET}').layout.images || []).length")
    assert kernels == 16  # one 3x3 kernel thumbnail per conv1 channel
    assert page.is_checked("#net-expand input[value='conv1']")
    shot(page, "#net-graph", "network-conv1-expanded")


def test_edge_slider_filters_edges(inside):
    page = inside

    def edge_count():
        return page.evaluate(
            f"""() => document.querySelector('{NET}').data.filter(t => t.name === 'weights')
                   .reduce((n, t) => n + t.x.filter(v => v === null).length, 0)"""
        )

    before = edge_count()
    page.locator("#net-edges [role=slider]").press("End")  # the keyboard moves the slider to its maximum, 12
    page.wait_for_function(
        f"""n => document.querySelector('{NET}').data.filter(t => t.name === 'weights')
               .reduce((m, t) => m + t.x.filter(v => v === null).length, 0) > n""",
        arg=before,
    )
    assert edge_count() > before


def test_unit_card_shows_weights_top_images_and_feature_visualisation(inside):
    page = inside
    click_node(page, "fc1", 5)
    page.wait_for_function("() => document.querySelector('#unit-title').textContent.includes('fc1 · neuron 5')")
    assert page.input_value("#unit-index") == "5"
    page.wait_for_selector("#unit-topk .topk-thumb", timeout=BUSY)
    assert page.locator("#unit-topk .topk-thumb").count() == 9
    values = [float(v) for v in page.locator("#unit-topk .topk-cell .hint").all_text_contents()]
    assert values == sorted(values, reverse=True)
    # fc1's incoming weights are 32 maps of 12x12, drawn as one tiled heatmap
    assert "32x12x12" in page.text_content("#unit-weights")
    feature_visualisation(page)
    captions = page.locator("#unit-featurevis .fig-cell .hint").all_text_contents()
    assert captions[0].startswith("naive gradient ascent") and captions[1].startswith("regularised, data prior")
    # the unit's top image beside itself accentuated, the accentuated one firing more
    top = page.locator("#unit-topk .topk-thumb").first.get_attribute("title")
    assert captions[2].startswith("top image ") and captions[2].split(" · ")[0].split()[-1] in top
    assert captions[3].startswith("accentuated") and float(captions[3].split(" · ")[1]) > float(
        captions[2].split(" · ")[1]
    )
    trust = page.text_content("#unit-featurevis .trust")
    assert re.search(r"(close to|far from) the data ink \d+\.\d\dx, high frequencies \d+\.\d\dx", trust), trust
    page.wait_for_selector("#unit-guided img")
    assert page.locator("#unit-guided img").count() == 3
    bars = page.evaluate("() => document.querySelector('#unit-classes .js-plotly-plot')._fullData[0].y.length")
    assert bars == 10
    shot(page, ".unit-card", "unit-card-fc1-5", SIZES)


def test_a_class_logits_feature_visualisation_is_drawn_from_the_data_and_says_it_is_close_to_it(inside):
    page = inside
    choose_unit(page, "out", 3, "out · neuron 3")
    feature_visualisation(page)
    captions = page.locator("#unit-featurevis .fig-cell .hint").all_text_contents()
    assert [c.split(" · ")[0].split(" ")[0] for c in captions] == ["naive", "regularised,", "top", "accentuated"]
    naive, regularised = (float(c.split(" · ")[1]) for c in captions[:2])
    best = float(page.text_content("#unit-featurevis").split("best dataset image ")[1].split(".")[0])
    assert regularised > best  # the digit drawn from the data still beats every MNIST image on the logit
    assert page.text_content("#unit-featurevis .trust .badge") == "close to the data"
    shot(page, ".unit-card", "unit-card-out-3", SIZES)


def test_a_conv1_channels_feature_visualisation_says_how_far_it_is_from_the_data(inside):
    page = inside
    choose_unit(page, "conv1", 4, "conv1 · channel 4")
    feature_visualisation(page)
    captions = page.locator("#unit-featurevis .fig-cell .hint").all_text_contents()
    assert captions[1].startswith("regularised, pixels")  # conv channels keep pixels and total variation
    assert page.text_content("#unit-featurevis .trust .badge") in ("close to the data", "far from the data")
    shot(page, ".unit-card", "unit-card-conv1-4", SIZES)


def test_top_images_of_a_conv_channel_outline_the_receptive_field(inside):
    page = inside
    page.locator("#unit-layer").click()
    page.get_by_role("dialog").get_by_role("option", name="conv2", exact=True).click()
    page.fill("#unit-index", "7")
    page.wait_for_function("() => document.querySelector('#unit-title').textContent.includes('conv2 · channel 7')")
    page.wait_for_selector("#unit-topk .topk-thumb", timeout=BUSY)
    assert re.search(r"the 5x5 receptive field", page.text_content("#unit-topk"))
    # a conv2 channel's incoming weights: one 3x3 kernel per conv1 channel
    assert "16x3x3" in page.text_content("#unit-weights")
    feature_visualisation(page)
    shot(page, ".unit-card", "unit-card-conv2-7", SIZES)
    # a unit conv2 does not have is refused with a sentence; the card stays on channel 7, not on channel 0
    page.fill("#unit-index", "40")
    page.wait_for_function("() => document.querySelector('#unit-error').textContent.includes('out of range')")
    assert "conv2 unit 40 is out of range: give one from 0 to 31." == page.text_content("#unit-error")
    assert "conv2 · channel 7" in page.text_content("#unit-title")
    page.fill("#unit-index", "8")
    page.wait_for_function("() => document.querySelector('#unit-title').textContent.includes('conv2 · channel 8')")
    assert page.text_content("#unit-error") == ""


def test_opening_the_page_writes_no_feature_visualisation_into_the_run(inside, mnist_run):
    page = inside
    page.locator(".unit-card").scroll_into_view_if_needed()
    page.wait_for_function("() => document.querySelector('#unit-featurevis').textContent.includes('Not computed yet')")
    assert "conv2 · channel 0" in page.text_content("#unit-title")  # the unit the card opens on
    assert not (mnist_run.path / "featurevis" / "conv2" / "0.npz").exists()
    assert not page.is_disabled("#unit-featurevis-start")


def test_feature_maps_switch_colour_scale_and_enlarge(inside):
    page = inside
    page.locator("#fmap-area").scroll_into_view_if_needed()
    page.wait_for_selector("#fmap-area .fmap")
    assert page.locator("#fmap-area .fmap").count() == 16 + 32 + 32
    # each tile shows a slice of its layer's strip: one PNG per layer, as wide as its channels side by side, by URL
    strip = "() => getComputedStyle(document.querySelector('#fmap-area .fmap')).backgroundImage"
    first = page.evaluate(strip)
    assert "/_layerscope/fmap?" in first and "layer=conv1" in first and "scale=channel" in first
    size = page.evaluate(
        """() => new Promise(resolve => {
            const image = new Image();
            image.onload = () => resolve([image.width, image.height]);
            image.src = getComputedStyle(document.querySelector('#fmap-area .fmap')).backgroundImage.slice(5, -2);
        })"""
    )
    assert size == [16 * 26, 26]  # conv1: 16 maps of 26x26
    page.get_by_text("one per layer").click()
    page.wait_for_function("() => document.querySelector('#fmap-area').textContent.includes('layer scale')")
    assert page.evaluate(strip) != first
    page.locator("#fmap-area .fmap").nth(16 + 4).click()  # conv2, channel 4
    page.wait_for_function(
        "() => document.querySelector('#fmap-zoom').textContent.includes('conv2 channel 4')", timeout=10_000
    )
    heat = page.evaluate("() => document.querySelector('#fmap-zoom .js-plotly-plot')._fullData[0].z.length")
    assert heat == 24
    shot(page, ".fmaps", "feature-maps-layer-scale")
    page.click("#fmap-open-unit")
    page.wait_for_function("() => document.querySelector('#unit-title').textContent.includes('conv2 · channel 4')")


def test_top_images_being_computed_say_how_far_they_are_and_stop_on_cancel(browser_context, mnist_run, tmp_path):
    # a server of its own, on a copy of the Run without top images: the shared server's are computed by the tests above
    path = shutil.copytree(mnist_run.path, tmp_path / "run")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest.pop("topk", None)
    (path / "manifest.json").write_text(json.dumps(manifest))
    shutil.rmtree(path / "topk", ignore_errors=True)
    status = "() => document.querySelector('#unit-topk').textContent"
    with serving(Run(path)) as url, opened(browser_context, url) as page:
        show(page, "network")  # the unit card asks for its top images: computed for every unit, over every image
        page.locator(".unit-card").scroll_into_view_if_needed()
        page.wait_for_function(
            f"() => /^computing the top images of every unit over 70,000 images… \\d+% \\(topk\\)/.test(({status})())",
            timeout=BUSY,
        )
        page.wait_for_selector("#unit-topk-cancel", state="visible", timeout=BUSY)
        assert not page.is_visible("#unit-topk-start")
        shot(page, ".unit-card", "unit-card-topk-computing")
        page.click("#unit-topk-cancel")
        page.wait_for_function(f"() => ({status})().includes('was cancelled')", timeout=BUSY)
        assert page.text_content("#unit-topk") == (
            "the search for the top images was cancelled; press 'Compute top images' to start it again."
        )
        assert not page.is_visible("#unit-topk-cancel") and "topk" not in Run(path).manifest
        # the page stops polling, and no poll starts it again; the button does
        page.wait_for_function("() => document.querySelector('#unit-topk-start').offsetParent !== null", timeout=BUSY)
        settle(page)
        assert "was cancelled" in page.text_content("#unit-topk")
        shot(page, ".unit-card", "unit-card-topk-cancelled")
        page.click("#unit-topk-start")
        page.wait_for_selector("#unit-topk .topk-thumb", timeout=BUSY)
        assert not page.is_visible("#unit-topk-start") and not page.is_visible("#unit-topk-cancel")
        assert "topk" in Run(path).manifest
