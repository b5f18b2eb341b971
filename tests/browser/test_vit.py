"""A vision transformer (tests.models:TinyViT, trained here on 3-channel 32x32 images) in the dashboard: a token
layer's projection switched from its class token to its token mean, the attention of the selected image per block
and head, and a token layer's feature maps on the 8x8 patch grid."""

import time

import pytest

from layerscope.data import load_dataset
from layerscope.pipeline import train_run
from layerscope.run import Run
from layerscope.training import TrainConfig
from tests.browser.conftest import BUSY, opened, serving, settle, show
from tests.conftest import make_image_folder

pytestmark = pytest.mark.browser

LAYER = "blocks.1.add_1"


@pytest.fixture(scope="module")
def vit_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("vit")
    data = load_dataset(make_image_folder(root / "shapes", n=64, size=32, channels=3, classes=4))
    spec = {"class": "tests.models:TinyViT", "args": {"in_channels": 3, "num_classes": 4}}
    run = train_run(root / "run", data, TrainConfig(epochs=1, batch_size=16, device="cpu"), spec=spec)
    with serving(run) as url:
        yield url, run


def _wait_for(condition, what):
    deadline = time.monotonic() + BUSY / 1000
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.2)


def test_a_token_layer_is_projected_from_its_class_token_or_its_token_mean(browser_context, vit_server):
    url, run = vit_server
    assert run.layer(LAYER).token_features == "cls"
    with opened(browser_context, f"{url}?a_layer={LAYER}&a_method=pca&b_layer=input&b_method=pca") as page:
        settle(page)
        row = page.locator("#proj-a .tokens-row")
        assert row.is_visible() and not page.locator("#proj-b .tokens-row").is_visible()  # the input has no tokens
        assert page.locator("#proj-a .proj-tokens input[value=cls]").is_checked()
        page.locator("#proj-a .proj-tokens label", has_text="token mean").click()

        # the Run keeps the choice and the panel shows the PCA of the token mean, computed anew
        def switched() -> bool:
            now = Run(run.path)
            meta = now.projection_meta(LAYER, "pca")
            return now.layer(LAYER).token_features == "mean" and meta is not None and meta["input"] == "token mean"

        _wait_for(switched, "the token mean's PCA")
        page.wait_for_function(
            "() => document.querySelector('#proj-a .proj-quality').textContent.includes('trustworthiness')",
            timeout=BUSY,
        )
        settle(page)
        assert "bad" not in (page.locator("#proj-a .proj-status").get_attribute("class") or "")
        assert page.locator("#proj-a .proj-tokens input[value=mean]").is_checked()
        # another layer: the switch goes away, and comes back with the layer's own choice
        page.click("#proj-a .proj-layer")
        page.get_by_role("option", name="blocks.2.add_1", exact=True).click()
        settle(page)
        assert page.locator("#proj-a .proj-tokens input[value=cls]").is_checked()


def test_attention_and_token_feature_maps_of_the_selected_image(browser_context, vit_server):
    url, _ = vit_server
    with opened(browser_context, f"{url}?unit={LAYER}:3") as page:
        show(page, "network")
        page.wait_for_selector(".attn-tile", timeout=BUSY)
        assert page.locator(".attn-tile").count() == 4 * 4 + 1  # 4 blocks of 4 heads, and the rollout
        # the unit card's top images outline the token's 4x4 patch
        page.wait_for_function("() => /patch of the maximal token/.test(document.body.textContent)", timeout=BUSY)
