"""The Draw panel's pure helpers: the strokes the browser sends, made into a digit."""

import numpy as np

from layerscope.dashboard.draw import digit_from_strokes, strokes_of
from layerscope.dashboard.state import LIVE, is_drawing


def test_strokes_of_clamps_and_drops_malformed_points():
    data = {"strokes": [[[0.5, 0.2], [1.4, -0.1], "bad", [0.3]], [], None], "version": 3}
    assert strokes_of(data) == [[(0.5, 0.2), (1.0, 0.0)]]
    assert strokes_of(None) == []
    assert strokes_of({"strokes": None}) == []


def test_digit_from_strokes_is_a_centred_mnist_digit():
    assert digit_from_strokes([]) is None
    digit = digit_from_strokes([[(0.1, 0.1), (0.1, 0.4)]])  # a short line in a corner
    assert digit is not None and digit.shape == (28, 28) and digit.dtype == np.float32
    rows, cols = np.nonzero(digit > 0.05)
    assert rows.max() - rows.min() + 1 <= 20  # fits MNIST's 20x20 box
    ys, xs = np.indices(digit.shape)
    assert abs((ys * digit).sum() / digit.sum() - 14) <= 1 and abs((xs * digit).sum() / digit.sum() - 14) <= 1
    # at another image size, the same rule: a box 20/28 of the field, centred by its mass
    big = digit_from_strokes([[(0.1, 0.1), (0.1, 0.4)]], field=56)
    assert big is not None and big.shape == (56, 56)
    rows, _ = np.nonzero(big > 0.05)
    assert 36 <= rows.max() - rows.min() + 1 <= 40


def test_drawing_keys():
    assert is_drawing(LIVE) and is_drawing("draw:3")
    assert not is_drawing(5) and not is_drawing("mean:2") and not is_drawing(None)
