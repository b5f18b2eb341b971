"""The model graph of a residual net (tests.models:SmallResNet, trained here on 3-channel 32x32 images) in the
Network view: laid out by dagre with no two labels overlapping, blocks that fold and open, an add node that opens
in the unit card, and the feature maps of a node clicked."""

import os

import pytest

from layerscope.data import load_dataset
from layerscope.pipeline import train_run
from layerscope.training import TrainConfig
from tests.browser.conftest import BUSY, opened, serving, settle, show
from tests.conftest import make_image_folder

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("LAYERSCOPE_SCREENSHOTS")
CY = "document.getElementById('net-dag')._cyreg.cy"

# every drawn node's label box, and the pairs of them that intersect
OVERLAPS = f"""() => {{ const cy = {CY};
    const boxes = cy.nodes().filter(n => !n.isParent()).map(n =>
        [n.id(), n.boundingBox({{includeNodes: false, includeLabels: true, includeOverlays: false}})]);
    const bad = [];
    for (let i = 0; i < boxes.length; i++) for (let j = i + 1; j < boxes.length; j++) {{
        const a = boxes[i][1], b = boxes[j][1];
        if (a.x1 < b.x2 && b.x1 < a.x2 && a.y1 < b.y2 && b.y1 < a.y2) bad.push([boxes[i][0], boxes[j][0]]);
    }}
    return {{count: boxes.length, overlapping: bad}}; }}"""


@pytest.fixture(scope="module")
def resnet_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("resnet")
    data = load_dataset(make_image_folder(root / "shapes", n=64, size=32, channels=3, classes=4))
    spec = {"class": "tests.models:SmallResNet", "args": {"in_channels": 3, "num_classes": 4, "image_size": 32}}
    # the adds are captured too (not by default): a click on one opens it in the unit card
    include = ["stem.0", "block*.add", "block*.relu_1", "pool", "fc"]
    run = train_run(root / "run", data, TrainConfig(epochs=1, batch_size=16, device="cpu"), spec=spec, include=include)
    with serving(run) as url:
        yield url, run


def _drawn(page, node):
    page.wait_for_function(f"() => {CY}.$id('{node}').length === 1", timeout=BUSY)


def _click(page, node):
    """A real mouse click on the node where cytoscape drew it."""
    x, y = page.evaluate(
        f"""() => {{ const cy = {CY}, box = cy.container().getBoundingClientRect();
                   const p = cy.$id('{node}').renderedPosition(); return [box.left + p.x, box.top + p.y]; }}"""
    )
    page.mouse.click(x, y)


def _click_frame(page, group):
    """A click inside an open block's frame, above its nodes (its padding)."""
    x, y = page.evaluate(
        f"""() => {{ const cy = {CY}, box = cy.container().getBoundingClientRect();
                   const b = cy.$id('{group}').renderedBoundingBox({{includeLabels: false}});
                   return [box.left + (b.x1 + b.x2) / 2, box.top + b.y1 + 3]; }}"""
    )
    page.mouse.click(x, y)


def test_residual_graph_folds_opens_and_opens_an_add_in_the_unit_card(browser_context, resnet_server):
    url, run = resnet_server
    graph = run.graph
    assert graph.method == "fx" and {"block1.add", "block2.add", "block3.add"} <= set(run.layer_names)
    with opened(browser_context, url) as page:
        show(page, "network")
        # 32 nodes: the blocks come folded, one node each, wired to what feeds them and what they feed
        _drawn(page, "block2")
        assert page.evaluate(f"() => {CY}.$id('block2.add').length") == 0
        edges = page.evaluate(f"() => {CY}.edges().map(e => [e.source().id(), e.target().id()])")
        assert ["block1", "block2"] in edges and ["stem.2", "block1"] in edges
        layout = page.evaluate(OVERLAPS)
        assert layout["count"] >= 8 and layout["overlapping"] == [], layout
        # a click on a folded block opens it: its nodes inside a frame, the shortcut into its add dashed
        _click(page, "block2")
        _drawn(page, "block2.add")
        settle(page)
        inside = page.evaluate(f"() => {CY}.$id('block2.add').parent().id()")
        assert inside == "group:block2"
        shortcut = page.evaluate(
            f"() => {CY}.edges('[target = \"block2.add\"]').map(e => [e.source().id(), e.hasClass('skip')])"
        )
        assert sorted(shortcut) == [["block2.bn2", True], ["block2.shortcut.1", False]] or sorted(shortcut) == [
            ["block2.bn2", False],
            ["block2.shortcut.1", True],
        ]
        page.wait_for_function(f"() => {CY}.nodes().length > 12", timeout=BUSY)
        assert page.evaluate(OVERLAPS)["overlapping"] == []
        # a click on the add: the unit card opens on it
        _click(page, "block2.add")
        page.wait_for_function(
            "() => document.querySelector('#unit-title').textContent.includes('block2.add · channel 0')", timeout=BUSY
        )
        assert "add of" in page.text_content("#net-dag-info")
        # a click on the open block's frame folds it again
        _click_frame(page, "group:block2")
        page.wait_for_function(f"() => {CY}.$id('block2.add').length === 0 && {CY}.$id('block2').length", timeout=BUSY)
        if SHOTS:
            page.screenshot(path=os.path.join(SHOTS, "model-graph.png"), full_page=True)
