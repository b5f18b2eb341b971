"""A model that is not the report's CNN (LeNet-style, BatchNorm, functional ops) on 3-channel 16x16 images of 4
classes from an image folder, trained for real, in the whole dashboard."""

import os

import pytest

from layerscope.data import load_dataset
from layerscope.pipeline import train_run
from layerscope.training import TrainConfig
from tests.browser.conftest import BUSY, NET_DRAWN, opened, serving, show
from tests.conftest import make_image_folder

pytestmark = pytest.mark.browser

NET = "#net-graph .js-plotly-plot"
SHOTS = os.environ.get("LAYERSCOPE_SCREENSHOTS")


@pytest.fixture(scope="module")
def lenet_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("lenet")
    data = load_dataset(make_image_folder(root / "shapes", n=96, size=16, channels=3, classes=4))
    spec = {"class": "tests.models:LeNetBN", "args": {"in_channels": 3, "num_classes": 4, "image_size": 16}}
    run = train_run(root / "run", data, TrainConfig(epochs=2, batch_size=16, device="cpu"), spec=spec)
    with serving(run) as url:
        yield url, run


def test_lenet_on_rgb_images_in_the_dashboard(browser_context, lenet_server):
    url, run = lenet_server
    assert [info.name for info in run.layers] == ["input", "conv1", "bn1", "conv2", "bn2", "fc1", "bn3", "fc2"]
    with opened(browser_context, url) as page:
        # the folder names are the classes, in both projections and the gallery
        legend = [t.strip() for t in page.locator("#proj-a .proj-graph .legendtext").all_text_contents()]
        assert [name for name in legend if name != "misclassified"] == ["cat", "dog", "owl", "yak"]
        gallery = [t.strip() for t in page.locator("#gallery-digit label").all_text_contents()]
        assert gallery == ["cat", "dog", "owl", "yak"]
        # the network graph draws every layer; the dense layers' neurons one by one
        show(page, "network")
        page.wait_for_function(NET_DRAWN)
        names = page.evaluate(
            f"() => document.querySelector('{NET}').data.filter(t => t.mode.startsWith('markers')).map(t => t.name)"
        )
        assert {"conv1", "conv2", "fc1", "fc2"} <= set(names)
        sizes = page.evaluate(
            f"""() => Object.fromEntries(document.querySelector('{NET}').data
                   .filter(t => t.mode.startsWith('markers')).map(t => [t.name, t.customdata.length]))"""
        )
        assert sizes["fc1"] == 32 and sizes["fc2"] == 4
        # feature maps of the selected RGB image: 6 + 12 channels (and the BatchNorm outputs)
        page.wait_for_selector("#fmap-area .fmap", timeout=BUSY)
        assert page.locator("#fmap-area .fmap").count() >= 6 + 12
        # the Draw view is off for colour images and says why (tests/integration/test_any_model.py: the pen's route)
        show(page, "draw")
        assert "in colour (3 x 16 x 16)" in page.text_content(".draw-card")
        assert page.is_disabled("#draw-over") and page.is_disabled("#draw-clear")
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "lenet.png"), full_page=True)
