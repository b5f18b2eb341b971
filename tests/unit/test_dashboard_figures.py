"""The dashboard's pure figure builders: what a user reads off the chart, on tiny hand-made arrays."""

import numpy as np
import pytest

from layerscope.attribution import RandomisationStep
from layerscope.dashboard.figures import (
    DOUBT_SCALE,
    WRONG_COLOR,
    doubt,
    figure_json,
    probability_figure,
    scatter_figure,
)
from layerscope.dashboard.interventions import DROP, GAIN, ablation_class_figure, similarity_figure
from layerscope.dashboard.unit_figures import GraphColumn, network_figure, recolour_nodes

NAMES = [str(k) for k in range(10)]


# -- colour by confidence ---------------------------------------------------------------------------------------------
def test_doubt_tells_90_99_and_99_9_percent_apart_where_a_linear_scale_does_not():
    confidence = np.array([0.9, 0.99, 0.999])
    lo, hi = DOUBT_SCALE
    values = doubt(confidence)
    np.testing.assert_allclose(values, [-1, -2, -3], atol=1e-9)
    # each a quarter of the colour scale from the next, half of it in all; on the linear scale it replaces [0, 1],
    # all three lie within a tenth of it, nearly one colour
    assert np.diff(values).max() / (hi - lo) <= -0.25 + 1e-9
    assert np.ptp(confidence) / (1 - 0) < 0.1


def test_doubt_is_clipped_to_its_scale_and_a_certain_image_is_no_warning():
    # pytest turns warnings into errors: log10(0) of a confidence of exactly 1 would fail here
    values = doubt(np.array([1.0, 1 - 1e-7, 0.0, 0.1], np.float32))
    assert values.min() >= DOUBT_SCALE[0] and values.max() <= DOUBT_SCALE[1]
    assert values[0] == values[1] == DOUBT_SCALE[0] and values[2] == DOUBT_SCALE[1]


def test_the_confidence_colouring_draws_doubt_with_a_colour_bar_in_confidences():
    n = 6
    confidence = np.array([0.5, 0.9, 0.99, 0.999, 0.9999, 1.0], np.float32)
    labels = np.zeros(n, int)
    fig = scatter_figure(
        np.zeros((n, 2), np.float32), labels, labels, confidence, np.ones(n, bool), "confidence", NAMES
    )
    marker = fig.data[0].marker
    np.testing.assert_allclose(marker.color, doubt(confidence), atol=1e-6)
    assert (marker.cmin, marker.cmax) == DOUBT_SCALE
    bar = dict(zip(marker.colorbar.tickvals, marker.colorbar.ticktext, strict=True))
    assert bar == {-4: "99.99%", -3: "99.9%", -2: "99%", -1: "90%", 0: "0%"}


# -- the ablation's per-class change ----------------------------------------------------------------------------------
def test_a_one_point_drop_of_one_class_fills_the_per_class_chart():
    before = np.full(10, 0.99)
    after = before.copy()
    after[3] = 0.98  # one point down
    after[5] = 0.995  # half a point up
    fig = ablation_class_figure(before, after, NAMES)
    (bars,) = fig.data  # one bar per class: the change, not before and after side by side
    np.testing.assert_allclose(bars.y, [0, 0, 0, -1, 0, 0.5, 0, 0, 0, 0], atol=1e-9)
    low, high = fig.layout.yaxis.range
    assert low == -high and 1 <= high <= 1.5  # symmetric, and the 1-point drop reaches most of the way down
    assert bars.marker.color[3] == DROP and bars.marker.color[5] == GAIN
    assert len({bars.marker.color[k] for k in (0, 1, 2, 4)}) == 1 and bars.marker.color[0] not in (DROP, GAIN)
    assert bars.customdata[3] == ["99.00%", "98.00%"]  # the hover's before and after


def test_the_per_class_axis_grows_with_the_largest_change_and_a_class_without_images_is_zero():
    before = np.array([0.99] * 9 + [np.nan])
    after = np.array([0.1] + [0.99] * 8 + [np.nan])
    fig = ablation_class_figure(before, after, NAMES)
    low, high = fig.layout.yaxis.range
    assert low == -high and 89 <= high <= 110
    assert fig.data[0].y[9] == 0 and fig.data[0].customdata[9] == ["no test images", "no test images"]


# -- the Grad-CAM sanity chart ----------------------------------------------------------------------------------------
def _step(randomised, spearman, ssim):
    return RandomisationStep(randomised=randomised, map=np.zeros((2, 2)), spearman=spearman, ssim=ssim)


def test_the_sanity_chart_shows_negative_similarities_above_zero_line():
    steps = [_step((), 1.0, 1.0), _step(("fc2",), -0.6, 0.3), _step(("fc2", "fc1"), float("nan"), -0.35)]
    axis = similarity_figure(steps).layout.yaxis
    assert axis.range[0] < -0.6 and axis.range[1] >= 1  # the lowest point is inside the chart
    assert axis.zeroline


def test_the_sanity_chart_of_positive_similarities_still_shows_zero():
    axis = similarity_figure([_step((), 1.0, 1.0), _step(("fc2",), 0.4, 0.5)]).layout.yaxis
    assert axis.range[0] == pytest.approx(-0.1) and axis.zeroline


# -- the network graph: built once per structure, its nodes recoloured ------------------------------------------------
def test_recoloured_nodes_are_the_figure_built_with_the_values():
    rng = np.random.default_rng(0)

    def columns(coloured):
        def values(n):
            return rng.normal(size=n) if coloured else None

        return [
            GraphColumn("input", "image", 1, False, "input 1x8x8"),
            GraphColumn("conv1", "conv", 4, True, "conv1 4@6x6", values=values(4)),
            GraphColumn("conv2", "conv", 3, False, "conv2 3@4x4", values=values(3)),
            GraphColumn("out", "dense", 10, True, "out 10 units", values=values(10), unit_names=NAMES),
        ]

    edges = [rng.normal(size=(4, 1)), rng.normal(size=(3, 4)), rng.normal(size=(10, 3))]
    grey = figure_json(network_figure(columns(False), edges, 2, 0.0, height=720))
    coloured = columns(True)
    expected = figure_json(network_figure(coloured, edges, 2, 0.0, height=720))
    assert recolour_nodes(grey, coloured, 720) == expected
    assert next(t for t in grey["data"] if t["name"] == "node colour scale")["visible"] is False
    assert recolour_nodes(grey, columns(False), 720) == grey


def test_probability_bars_filled_into_one_frame_keep_each_figure_its_own():
    first = probability_figure(np.array([0.7, 0.2, 0.1]), 1, ["a", "b", "c"])
    second = probability_figure(np.array([0.1, 0.1, 0.8]), 2, ["a", "b", "c"])
    assert first["data"][0]["x"] == pytest.approx([0.7, 0.2, 0.1]) and second["data"][0]["x"][2] == pytest.approx(0.8)
    assert first["data"][0]["marker"]["color"][0] == WRONG_COLOR  # predicted a, the true class is b
    assert first["data"][0]["marker"]["line"]["color"][1] == "#111"  # the true class outlined
    assert second["data"][0]["marker"]["color"][2] != WRONG_COLOR and first["data"][0]["text"][0] == "70.0%"
    assert first["layout"]["yaxis"]["type"] == "category" and first["data"][0]["y"] == ["a", "b", "c"]
