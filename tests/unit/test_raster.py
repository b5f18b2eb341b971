"""The raster of a large projection (dashboard/raster.py): what it draws, and the images a lasso or a box holds."""

import base64
import io

import numpy as np
from PIL import Image

from layerscope.dashboard import figures, raster


def blobs(n=20_000, seed=0):
    """``n`` points in four well-apart blobs, one per class, and what `raster.points` makes of them."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    centres = np.array([[0, 0], [10, 0], [0, 10], [10, 10]], np.float32)
    xy = centres[labels] + rng.normal(scale=1.0, size=(n, 2)).astype(np.float32)
    keep = np.ones(n, bool)
    keep[::7] = False  # a split that shows some of them
    pts = raster.points(xy, labels, labels, np.full(n, 0.9, np.float32), keep, "label", ("a", "b", "c", "d"))
    return xy, labels, keep, pts


def decode(url):
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGBA"))


def test_points_keep_the_shown_images_grouped_as_the_scatter_colours_them():
    xy, labels, keep, pts = blobs()
    assert sorted(pts.index.tolist()) == np.flatnonzero(keep).tolist()
    np.testing.assert_array_equal(pts.xy, xy[pts.index])
    assert pts.names == ("a", "b", "c", "d") and pts.colors == tuple(figures.CLASS_COLORS[:4])
    np.testing.assert_array_equal(pts.codes, labels[pts.index])
    x0, x1, y0, y1 = pts.full
    assert x0 < xy[keep, 0].min() and x1 > xy[keep, 0].max() and y0 < xy[keep, 1].min() and y1 > xy[keep, 1].max()


def test_a_lasso_and_a_box_hold_the_images_inside_them():
    xy, labels, keep, pts = blobs()
    # a triangle around the blob at (10, 10) only: its kept images, none of the others
    found = raster.inside(pts, lasso=([5.0, 16.0, 10.0], [6.0, 6.0, 16.0]))
    x, y = xy[:, 0], xy[:, 1]
    # inside the triangle, by its three half-planes (edges (5,6)-(16,6), (16,6)-(10,16), (10,16)-(5,6))
    inside = (y > 6) & ((x - 16) * 10 - (y - 6) * -6 < 0) & ((x - 10) * -10 - (y - 16) * -5 < 0)
    np.testing.assert_array_equal(found, np.flatnonzero(inside & keep))
    assert set(labels[found]) == {3} and len(found) > 3000
    box = raster.inside(pts, box=[12.0, -3.0, -3.0, 3.0])  # corners in any order
    np.testing.assert_array_equal(box, np.flatnonzero((x >= -3) & (x <= 12) & (y >= -3) & (y <= 3) & keep))
    assert len(raster.inside(pts, lasso=([0.0, 1.0], [0.0, 1.0]))) == 0  # two points enclose nothing


def test_the_raster_draws_each_class_in_its_colour_and_lights_a_selection():
    xy, labels, keep, pts = blobs()
    view = pts.full
    size = (200, 160)
    pixels = decode(raster.render(pts, view, size=size))
    assert pixels.shape == (160, 200, 4)

    def at(x, y):  # the pixel of data point (x, y)
        x0, x1, y0, y1 = view
        return pixels[int((y1 - y) / (y1 - y0) * size[1]), int((x - x0) / (x1 - x0) * size[0])]

    for k, (cx, cy) in enumerate([(0, 0), (10, 0), (0, 10), (10, 10)]):
        want = np.array([int(figures.CLASS_COLORS[k][i : i + 2], 16) for i in (1, 3, 5)])
        assert at(cx, cy)[3] > 150 and np.abs(at(cx, cy)[:3].astype(int) - want).max() <= 2
    assert at(5, 5)[3] == 0  # nothing between the blobs
    # the blob of class 0 selected: drawn opaque, the other blobs faded
    chosen = pts.codes == 0
    lit = decode(raster.render(pts, view, chosen, size=size))
    assert lit[int(160 * (view[3] - 0) / (view[3] - view[2])), int(200 * (0 - view[0]) / (view[1] - view[0])), 3] > 150
    faded = lit[int(160 * (view[3] - 10) / (view[3] - view[2])), int(200 * (10 - view[0]) / (view[1] - view[0])), 3]
    assert 0 < faded <= raster.FADED_ALPHA


def test_the_hover_grid_names_an_image_of_each_cell():
    xy, labels, keep, pts = blobs()
    view = [8.0, 12.0, 8.0, 12.0]
    mask = pts.in_view(view)
    counts, image = raster.hover_grid(pts, view, mask, size=(40, 40))
    assert counts.shape == image.shape == (10, 10)
    assert np.nansum(counts) == mask.sum()
    for row, column in zip(*np.nonzero(image >= 0), strict=True):
        x, y = xy[image[row, column]]
        assert 8 + column * 0.4 <= x <= 8 + (column + 1) * 0.4 and 8 + row * 0.4 <= y <= 8 + (row + 1) * 0.4
    assert ((image >= 0) == np.isfinite(counts)).all()
