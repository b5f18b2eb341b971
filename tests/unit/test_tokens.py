"""A vision transformer's token layers: (T, D) outputs recorded as D embedding channels over the patch tokens' grid,
with the class token beside them, and every tool that takes a conv layer taking them (ablation, Grad-CAM, guided
backprop, receptive fields, projections from the class token or the token mean)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerscope.ablation import Ablation, ablated
from layerscope.attribution import attribute, gradcam_layers, guided_backprop
from layerscope.capture import describe_layers, layer_outputs, token_map
from layerscope.data.datasets import Dataset
from layerscope.errors import RunError
from layerscope.layers import LayerInfo, token_layout
from layerscope.manifest import check_manifest
from layerscope.pipeline import create_run, graph_model
from layerscope.projections.compute import compute_pca
from layerscope.receptive import receptive_field
from layerscope.run import Run
from tests.conftest import make_images
from tests.models import TinyViT

RGB = (3, 32, 32)
BLOCK = "blocks.1.add_1"


def test_which_outputs_are_tokens():
    assert token_layout((65, 32)) == (1, 8)  # ViT: a class token and 8x8 patches of 32 features
    assert token_layout((64, 48)) == (0, 8)  # patches only
    assert token_layout((64, 49)) is None  # 64 channels of a flattened 7x7 map: its features make a grid too
    assert token_layout((4, 6)) is None and token_layout((10,)) is None and token_layout((3, 8, 8)) is None
    x = torch.arange(2 * 65 * 3, dtype=torch.float32).reshape(2, 65, 3)
    grid, head = token_map(x)
    assert grid.shape == (2, 3, 8, 8) and head.shape == (2, 1, 3)
    assert grid[1, 2, 3, 4] == x[1, 1 + 3 * 8 + 4, 2] and torch.equal(head[:, 0], x[:, 0])


@pytest.fixture(scope="module")
def vit():
    torch.manual_seed(0)
    model = TinyViT(num_classes=4).eval()
    gm, graph = graph_model(model, RGB)
    assert graph.method == "fx", graph.reason
    return model, gm


def _tokens(model, x):
    with torch.no_grad():
        t = model.patch_embed(x).flatten(2).transpose(1, 2)
        t = torch.cat([model.cls_token.expand(len(x), -1, -1), t], 1) + model.pos_embed
        return model.blocks[1](model.blocks[0](t))  # (N, 65, 32)


def test_block_outputs_are_channels_over_the_patch_grid(vit):
    model, gm = vit
    infos = {info.name: info for info in describe_layers(gm, RGB)}
    block = infos[BLOCK]
    assert (block.kind, block.shape, block.tokens, block.token_features) == ("conv", (32, 8, 8), 1, "cls")
    assert infos["patch_embed"].tokens is None and infos["head"].kind == "dense"
    assert LayerInfo.from_dict(block.to_dict()).to_dict() == block.to_dict()
    x = torch.rand(3, *RGB)
    got = layer_outputs(gm, x, [BLOCK])
    tokens = _tokens(model, x)
    torch.testing.assert_close(got[BLOCK][:, 7], tokens[:, 1:, 7].reshape(3, 8, 8), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got[BLOCK + "#cls"], tokens[:, 0], atol=1e-5, rtol=1e-5)


def test_ablating_a_channel_switches_it_off_in_every_token(vit):
    model, gm = vit
    x = torch.rand(2, *RGB)

    def zero_channel(module, args, output):
        output = output.clone()
        output[..., [3, 9]] = 0
        return output

    handle = model.blocks[1].register_forward_hook(zero_channel)
    try:
        with torch.no_grad():
            expected = model(x)
    finally:
        handle.remove()
    with ablated(gm, [Ablation(BLOCK, (3, 9))]), torch.no_grad():
        got = gm(x)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        assert not torch.allclose(gm(x), got, atol=1e-4)  # the ablation changed something


def test_gradcam_guided_backprop_and_receptive_fields_on_tokens(vit):
    _, gm = vit
    assert gradcam_layers(gm, RGB)[-1] == "blocks.3.add_1"  # the last block's tokens: ViT's usual Grad-CAM layer
    image = torch.rand(*RGB)
    cam = attribute(gm, image, "gradcam", target=1, layer=BLOCK)
    assert cam.map.shape == (32, 32) and (cam.map >= 0).all() and cam.map.std() > 0
    patch_cam = attribute(gm, image, "gradcam", target=1, layer="patch_embed")
    assert not np.allclose(cam.map, patch_cam.map)
    rf = receptive_field(gm, BLOCK, RGB)
    assert rf.token_patch and not rf.whole_image and rf.box(2, 3, (32, 32)) == (8, 12, 12, 16)
    assert receptive_field(gm, "head", RGB).whole_image
    saliency = guided_backprop(gm, image, BLOCK, 5)
    assert saliency.shape == RGB and np.abs(saliency).sum() > 0


@pytest.fixture(scope="module")
def vit_run(tmp_path_factory, vit):
    model, _ = vit
    images, labels = make_images(64, size=32, channels=3, classes=4)
    dataset = Dataset(
        "bars",
        images.transpose(0, 3, 1, 2).copy(),
        labels.astype(np.int64),
        (np.arange(64) % 4 == 3).astype(np.uint8),
        ["a", "b", "c", "d"],
    )
    spec = {"class": "tests.models:TinyViT", "args": {"in_channels": 3, "num_classes": 4}}
    return create_run(tmp_path_factory.mktemp("vit") / "run", dataset, model, spec, device="cpu")


def test_a_run_stores_and_projects_token_layers(vit_run, vit):
    model, _ = vit
    run = Run(vit_run.path, trust_model_code=True)
    info = run.layer(BLOCK)
    assert run.manifest["layers"][run.layer_names.index(BLOCK)]["tokens"] == {"extra": 1, "project_from": "cls"}
    tokens = _tokens(model, run.dataset().pixels(np.arange(8)))
    np.testing.assert_allclose(run.channel_summary(BLOCK, "cls")[:8], tokens[:, 0].numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(run.channel_summary(BLOCK, "mean")[:8], tokens[:, 1:].mean(1).numpy(), atol=1e-5)
    assert f"activations/{BLOCK}.cls.npy" in run.layer_files(BLOCK)
    # projected from the class token: the PCA's first scores are those of the stored class-token features
    pca = run.projection(BLOCK, "pca")
    assert run.projection_meta(BLOCK, "pca")["input"] == "class token"
    cls = np.asarray(run.channel_summary(BLOCK, "cls"), np.float64)
    centred = cls - cls.mean(0)
    top = np.linalg.svd(centred, full_matrices=False)[2][:2]
    np.testing.assert_allclose(np.abs(pca), np.abs(centred @ top.T), rtol=1e-3, atol=1e-3)
    assert run.features(BLOCK, "pca_components").shape[1] == info.shape[0] == 32


def test_switching_a_token_layer_to_the_token_mean(vit_run):
    run = Run(vit_run.path, trust_model_code=True)
    before = np.array(run.projection(BLOCK, "pca"))
    run.set_token_source(BLOCK, "mean")
    assert run.layer(BLOCK).token_features == "mean" and run.projection_meta(BLOCK, "pca") is None
    assert not run.has_features(BLOCK, "pca_components")  # fitted on the class token: gone with it
    assert Run(run.path).layer(BLOCK).token_features == "mean"  # the Run keeps the choice
    after = compute_pca(run, [BLOCK])[BLOCK]
    assert after.meta["input"] == "token mean" and not np.allclose(np.abs(after.embedding), np.abs(before))
    with pytest.raises(RunError, match="not a transformer's token layer"):
        run.set_token_source("patch_embed", "mean")
    with pytest.raises(RunError, match="'cls' or 'mean', not 'max'"):
        run.set_token_source(BLOCK, "max")
    manifest = dict(run.manifest)
    manifest["layers"] = [dict(d) for d in manifest["layers"]]
    manifest["layers"][run.layer_names.index(BLOCK)]["tokens"] = {"extra": 0, "project_from": "cls"}
    with pytest.raises(RunError, match=r"layers\[\d\]\.tokens"):
        check_manifest(manifest, "manifest.json")


def test_a_new_image_is_placed_and_matched_in_a_token_layers_space(vit_run, vit):
    """What the Draw view does with a drawing: its values as the layer's projections take them (the class token, or
    the token mean), its nearest training images and its place in the projection; a training image given as new
    finds itself and lands on its own point."""
    from layerscope.capture import image_layer_outputs
    from layerscope.drawing import NeighbourIndex
    from layerscope.layers import image_projection_values
    from layerscope.projections.place import fit_placement

    _, gm = vit
    run = Run(vit_run.path, trust_model_code=True)
    if run.layer(BLOCK).token_features != "cls":
        run.set_token_source(BLOCK, "cls")
        compute_pca(run, [BLOCK])
    index = int(np.flatnonzero(np.asarray(run.split) == 0)[5])
    outputs = image_layer_outputs(gm, run.images[index], [BLOCK])
    values = image_projection_values(run.layer(BLOCK), outputs)
    assert values.shape == (32,)
    np.testing.assert_allclose(values, run.channel_summary(BLOCK, "cls")[index], rtol=1e-4, atol=1e-5)
    found = NeighbourIndex(run, BLOCK).query(values, 3)
    assert found.indices[0] == index and found.distances[0] == pytest.approx(0, abs=1e-3)
    point = fit_placement(run, BLOCK, "pca").transform(values[None])[0]
    np.testing.assert_allclose(point, run.projection(BLOCK, "pca")[index], atol=1e-3)
