"""A drawn digit made to look like MNIST's, and the training images nearest to an input in a layer."""

import numpy as np
import pytest
import torch

from layerscope.capture import layer_outputs
from layerscope.data import load_mnist
from layerscope.drawing import (
    NeighbourIndex,
    center_of_mass,
    draw_over,
    drawing_off,
    preprocess_digit,
    render_strokes,
)
from layerscope.errors import LayerscopeError
from layerscope.models.pretrained import pretrained_seed_cnn
from layerscope.projections.compute import pca_transform

MIDDLE = 14  # where MNIST's digits have their centre of mass, within half a pixel


def bounding_box(image):
    rows, cols = np.nonzero(image > 0.05)
    return rows.max() - rows.min() + 1, cols.max() - cols.min() + 1


def test_a_small_stroke_in_a_corner_becomes_a_centred_digit():
    canvas = render_strokes([[(0.05, 0.05), (0.05, 0.3)]])  # a short vertical line, top left
    digit = preprocess_digit(canvas)
    assert digit.shape == (28, 28) and 0 <= digit.min() and digit.max() <= 1
    height, width = bounding_box(digit)
    assert height == 20 and width <= 20  # fitted to the 20x20 box, aspect ratio kept
    cy, cx = center_of_mass(digit)
    assert abs(cy - MIDDLE) <= 0.501 and abs(cx - MIDDLE) <= 0.501
    assert 0.05 < digit[(digit > 0) & (digit < 1)].size / max((digit > 0).sum(), 1)  # grey, anti-aliased edges


def test_mnist_digits_survive_preprocessing():
    """An MNIST digit drawn large on a canvas comes back as (nearly) itself: the same box and centring."""
    mnist = load_mnist()
    for index in range(0, 200, 10):
        original = mnist.images[index, 0].astype(np.float32) / 255
        canvas = np.kron(original, np.ones((10, 10), np.float32))  # 280x280, as a canvas would hold it
        again = preprocess_digit(canvas)
        assert np.corrcoef(original.ravel(), again.ravel())[0, 1] > 0.95, index
        cy, cx = center_of_mass(again)
        assert abs(cy - MIDDLE) <= 0.501 and abs(cx - MIDDLE) <= 0.501
        oy, ox = center_of_mass(original)
        assert abs(oy - MIDDLE) <= 0.501 and abs(ox - MIDDLE) <= 0.501  # as MNIST placed it
        assert max(bounding_box(again)) <= 20


def test_the_network_reads_drawn_digits():
    model, _, _ = pretrained_seed_cnn()
    one = preprocess_digit(render_strokes([[(0.5, 0.15), (0.5, 0.85)]]))
    circle = [(0.5 + 0.25 * np.sin(t), 0.5 - 0.33 * np.cos(t)) for t in np.linspace(0, 2 * np.pi, 40)]
    zero = preprocess_digit(render_strokes([circle]))
    with torch.inference_mode():
        predicted = model(torch.from_numpy(np.stack([one, zero]))[:, None]).argmax(1).tolist()
    assert predicted == [1, 0]


def test_empty_and_wrong_drawings():
    assert not preprocess_digit(np.zeros((280, 280))).any()
    with pytest.raises(LayerscopeError, match="one 2-D grey image"):
        preprocess_digit(np.zeros((28, 28, 3)))


def test_strokes_drawn_over_an_image_leave_its_other_pixels_as_they_were():
    image = load_mnist().images[60_000, 0]  # the first test image, a 7: uint8 (28, 28)
    base = image.astype(np.float32) / 255
    assert np.array_equal(draw_over(image, []), base)
    # a short horizontal stroke across the top rows, where this digit (a 7) has some ink and much black
    out = draw_over(image, [[(0.1, 0.05), (0.9, 0.05)]])
    assert out.shape == (28, 28) and out.dtype == np.float32
    touched = out != base
    assert touched.any() and (out >= base).all()  # ink only adds: each pixel the brighter of the two
    rows = np.flatnonzero(touched.any(axis=1))
    assert rows.max() <= 3  # the pen's width (2 pixels) around row 1.4; nothing moved or rescaled below
    assert np.array_equal(out[5:], base[5:])
    # the stroke's middle is fully inked; its ends fade out over a pixel
    assert out[1, 5:22].min() > 0.9
    with pytest.raises(LayerscopeError, match="2-D grey image"):
        draw_over(np.zeros((28, 28, 3), np.uint8), [[(0.5, 0.5)]])


@pytest.mark.parametrize("layer", ["fc1", "conv2", "input"])
def test_nearest_training_images(tiny_run, layer):
    index = NeighbourIndex(tiny_run, layer)
    train = int(index.train[17])
    image = tiny_run.dataset().pixels(slice(train, train + 1))
    values = layer_outputs(tiny_run.load_model(), image, [layer])[layer]
    found = index.query(values[0].numpy(), k=8)
    assert found.indices[0] == train and found.distances[0] < 1e-2  # an image is its own nearest neighbour
    assert len(found.indices) == 8 and (np.diff(found.distances) >= 0).all()
    assert (np.asarray(tiny_run.split)[found.indices] == 0).all()  # training images only


def test_pca_transform_places_images_where_the_projection_did(tiny_run):
    for layer in ("fc2", "conv2"):
        model = tiny_run.load_model()
        pixels = tiny_run.dataset().pixels(slice(0, 5))
        values = layer_outputs(model, pixels, [layer])[layer].reshape(5, -1).numpy()
        placed = pca_transform(tiny_run, layer, values)[:, :2]
        assert np.allclose(placed, tiny_run.projection(layer, "pca")[:5], atol=1e-3), layer


def test_a_drawing_is_off_for_colour_or_oblong_images():
    assert drawing_off((1, 28, 28)) is None and drawing_off((1, 32, 32)) is None
    assert "in colour (3 x 32 x 32)" in str(drawing_off((3, 32, 32)))
    assert "square" in str(drawing_off((1, 28, 20)))
