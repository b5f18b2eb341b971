"""save_sheet: real PNGs read back with PIL; images found pixel-exact, text only in its own bands."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFont

from layerscope import sheets
from layerscope.errors import LayerscopeError
from layerscope.sheets import Tile, save_sheet

DARK = 110  # text is drawn near-black; the test images below never go this dark


def bright(seed: int, c: int = 1, h: int = 6, w: int = 5) -> np.ndarray:
    """A random image with values well above DARK, distinct per seed."""
    return np.random.default_rng(seed).uniform(0.55, 1.0, (c, h, w)).astype(np.float32)


def read(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        assert im.mode == "RGB"
        return np.asarray(im).copy()


def enlarged(image: np.ndarray, scale: int) -> np.ndarray:
    """What a tile should look like on the sheet: (H*scale, W*scale, 3) uint8."""
    u8 = (np.clip(image, 0, 1) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    if u8.shape[2] == 1:
        u8 = np.repeat(u8, 3, axis=2)
    return np.repeat(np.repeat(u8, scale, axis=0), scale, axis=1)


def find(sheet: np.ndarray, block: np.ndarray) -> list[tuple[int, int]]:
    """Every (y, x) where ``block`` appears exactly in ``sheet``."""
    bh, bw = block.shape[:2]
    ys, xs = np.nonzero((sheet == block[0, 0]).all(axis=2))
    return [
        (int(y), int(x))
        for y, x in zip(ys, xs, strict=True)
        if y + bh <= sheet.shape[0]
        and x + bw <= sheet.shape[1]
        and np.array_equal(sheet[y : y + bh, x : x + bw], block)
    ]


def locate(sheet: np.ndarray, block: np.ndarray) -> tuple[int, int]:
    hits = find(sheet, block)
    assert len(hits) == 1, f"tile found {len(hits)} times"
    return hits[0]


def dark(sheet: np.ndarray) -> np.ndarray:
    return sheet.max(axis=2) < DARK


def test_tiles_appear_exactly_in_rows_of_different_lengths(tmp_path: Path) -> None:
    two_lines = "#1 test-8812\n7.412"  # captions of the first row must leave room above the second row's tile
    rows = [[Tile(bright(0), two_lines), Tile(bright(1), two_lines), Tile(bright(2))], [Tile(bright(3), two_lines)]]
    out = save_sheet(tmp_path / "s.png", rows, title="t", scale=3)
    assert out == tmp_path / "s.png" and isinstance(out, Path)
    sheet = read(out)
    (y0, x0), (y1, x1), (y2, x2) = (locate(sheet, enlarged(t.image, 3)) for t in rows[0])
    y3, x3 = locate(sheet, enlarged(rows[1][0].image, 3))
    assert y0 == y1 == y2 and x0 < x1 < x2
    assert x1 - x0 == x2 - x1 > 5 * 3  # equal spacing, with a gap between tiles
    assert x3 == x0 and y3 > y0 + 6 * 3  # the second row starts under the first, left-aligned
    assert 0 < x0 and 0 < y0 and x2 + 15 < sheet.shape[1]  # margins: nothing touches the edges
    assert (sheet[0, :] == 255).all() and (sheet[:, -1] == 255).all()  # white background
    assert (sheet[-sheets.MARGIN :] == 255).all()  # the last row's captions end above the bottom margin
    ink = np.nonzero(dark(sheet)[y0 + 18 : y3 - 1].any(axis=1))[0]
    assert ink.max() + y0 + 18 < y3 - 4  # and the first row's, clear of the second row's tiles


def test_scale_is_nearest_neighbour(tmp_path: Path) -> None:
    image = np.array([[[0.0, 1.0], [1.0, 0.6]]], np.float32)  # 2x2 grey
    sheet = read(save_sheet(tmp_path / "s.png", [[Tile(image)]], title="t", scale=5))
    y, x = locate(sheet, enlarged(image, 5))
    assert (sheet[y : y + 5, x : x + 5] == 0).all() and (sheet[y : y + 5, x + 5 : x + 10] == 255).all()
    assert (sheet[y + 5 : y + 10, x + 5 : x + 10] == 153).all()  # 0.6 * 255 rounded, all three channels


def test_grey_and_rgb_tiles_mixed(tmp_path: Path) -> None:
    red = np.zeros((3, 4, 4), np.float32)
    red[0] = 0.9
    grey = np.full((1, 4, 4), 0.7, np.float32)
    sheet = read(save_sheet(tmp_path / "s.png", [[Tile(grey), Tile(red)]], title="t", scale=2))
    gy, gx = locate(sheet, enlarged(grey, 2))
    ry, rx = locate(sheet, enlarged(red, 2))
    assert (sheet[gy, gx] == [179, 179, 179]).all()  # grey stays grey
    assert (sheet[ry, rx] == [230, 0, 0]).all()  # RGB stays RGB
    assert gy == ry and gx < rx


def test_values_outside_0_1_are_clipped(tmp_path: Path) -> None:
    image = np.array([[[-3.0, 7.0]]], np.float32)
    sheet = read(save_sheet(tmp_path / "s.png", [[Tile(image)]], title="t", scale=4))
    locate(sheet, enlarged(np.array([[[0.0, 1.0]]], np.float32), 4))


def test_title_and_captions_are_dark_in_their_bands_and_never_on_tiles(tmp_path: Path) -> None:
    scale = 10
    tiles = [Tile(bright(k), f"#{k + 1} test-88{k}\n7.41{k}") for k in range(3)]
    sheet = read(save_sheet(tmp_path / "s.png", [tiles], title="fc1 unit 12: top 3", scale=scale))
    th, tw = 6 * scale, 5 * scale
    spots = [locate(sheet, enlarged(t.image, scale)) for t in tiles]  # tiles intact: no text drawn over them
    mask = dark(sheet)
    top = spots[0][0]
    assert mask[:top].any()  # the title, above the tiles
    for y, x in spots:
        band = mask[y + th :, x : x + tw]
        assert band.any()  # the caption, under its tile
        rows_with_ink = np.nonzero(band.any(axis=1))[0]
        assert rows_with_ink.max() - rows_with_ink.min() > 12  # two lines, not one
    # every dark pixel below the title is in some tile's caption column, under the tiles
    ys, xs = np.nonzero(mask[top:])
    assert (ys >= th).all()
    assert all(any(x <= px < x + tw for _, x in spots) for px in xs)


def test_captions_are_centred_and_empty_captions_draw_nothing(tmp_path: Path) -> None:
    tiles = [Tile(bright(0), "ab"), Tile(bright(1))]
    sheet = read(save_sheet(tmp_path / "s.png", tiles and [tiles], title="t", scale=10))
    (y, x0), (_, x1) = (locate(sheet, enlarged(t.image, 10)) for t in tiles)
    mask = dark(sheet)[y + 60 :]
    xs = np.nonzero(mask[:, x0 : x0 + 50].any(axis=0))[0]
    assert abs((xs.min() + xs.max()) / 2 - 25) < 4  # centred under a 50 px tile
    assert not mask[:, x1 - 4 :].any()  # the uncaptioned tile has nothing under it


def test_long_caption_stays_inside_its_tile_and_does_not_widen_the_sheet(tmp_path: Path) -> None:
    scale = 4  # 20 px wide tiles: no font fits the long caption
    long = "conv2 re-initialised along with every layer above it " * 3
    short_rows = [[Tile(bright(k), "x\ny") for k in range(3)]]
    long_rows = [[Tile(bright(0), "x"), Tile(bright(1), long + "\n" + long), Tile(bright(2), "x")]]
    short = read(save_sheet(tmp_path / "short.png", short_rows, title="t", scale=scale))
    sheet = read(save_sheet(tmp_path / "long.png", long_rows, title="t", scale=scale))
    assert sheet.shape[1] == short.shape[1]  # the long caption was cut, not given room (it may use a smaller font)
    spots = [locate(sheet, enlarged(t.image, scale)) for t in long_rows[0]]
    y, xm = spots[1]
    below = dark(sheet)[y + 6 * scale :]
    assert below[:, xm : xm + 5 * scale].any()  # the middle caption is drawn ...
    ink = np.nonzero(below.any(axis=0))[0]
    allowed = np.zeros(sheet.shape[1], bool)
    for _, x in spots:
        allowed[x : x + 5 * scale] = True
    assert allowed[ink].all()  # ... and nothing of it spills into the gaps or onto a neighbour's column


def test_fit_shrinks_then_cuts_with_an_ellipsis() -> None:
    font = sheets._font(10)
    assert sheets._fit(font, "short", 200) == "short"
    cut = sheets._fit(font, "a caption far too long for a narrow tile", 60)
    assert cut.endswith(sheets._ellipsis(font)) and cut.startswith("a cap")
    assert sheets._width(font, cut) <= 60
    assert sheets._fit(font, "anything", 1) == ""  # not even the ellipsis fits
    # one font size for the sheet: the largest at which every caption fits
    assert sheets._caption_font(["ab"], 200).size == max(sheets.CAPTION_SIZES)  # type: ignore[union-attr]
    wide = "#1 test-8812 7.412"
    small = sheets._caption_font(["ab", wide], sheets._width(sheets._font(10), wide))
    assert small.size <= 10  # type: ignore[union-attr]
    assert sheets._caption_lines("a\nb\nc") == ["a", "b c"]  # a third line joins the second, to be cut


def test_long_title_widens_the_sheet_and_is_not_cut(tmp_path: Path) -> None:
    rows = [[Tile(bright(0))]]
    narrow = read(save_sheet(tmp_path / "a.png", rows, title="t", scale=2))
    title = "fc1 unit 12: top 9 of 70,000 images, with a title much wider than the single small tile below it"
    sheet = read(save_sheet(tmp_path / "b.png", rows, title=title, scale=2))
    assert sheet.shape[1] > narrow.shape[1] + 300
    assert sheet.shape[1] >= sheets._width(sheets._font(sheets.TITLE_SIZE), title) + 2 * sheets.MARGIN
    y, _ = locate(sheet, enlarged(rows[0][0].image, 2))
    ink = np.nonzero(dark(sheet)[:y].any(axis=0))[0]
    assert ink.max() > sheet.shape[1] - sheets.MARGIN - 40  # the title runs to near the right edge ...
    assert ink.max() < sheet.shape[1] - sheets.MARGIN // 2  # ... and stops inside the margin
    assert ink.min() >= sheets.MARGIN // 2


def test_note_is_drawn_below_everything(tmp_path: Path) -> None:
    rows = [[Tile(bright(0), "cap")]]
    plain = read(save_sheet(tmp_path / "a.png", rows, title="t", scale=4))
    sheet = read(save_sheet(tmp_path / "b.png", rows, title="t", note="best dataset image: 25.1", scale=4))
    assert sheet.shape[0] > plain.shape[0]
    assert np.array_equal(sheet[: plain.shape[0] - sheets.MARGIN, : plain.shape[1]], plain[: -sheets.MARGIN])
    assert dark(sheet)[plain.shape[0] - sheets.MARGIN :].any()


def test_row_labels_get_their_own_column(tmp_path: Path) -> None:
    rows = [[Tile(bright(0)), Tile(bright(1))], [Tile(bright(2))]]
    scale = 6
    none = read(save_sheet(tmp_path / "a.png", rows, title="t", scale=scale))
    short = read(save_sheet(tmp_path / "b.png", rows, title="t", row_labels=["a", "b"], scale=scale))
    labels = ["trained", "fc2 re-initialised"]
    sheet = read(save_sheet(tmp_path / "c.png", rows, title="t", row_labels=labels, scale=scale))
    x_none = locate(none, enlarged(rows[0][0].image, scale))[1]
    x_short = locate(short, enlarged(rows[0][0].image, scale))[1]
    (y0, x0), (y1, x1) = (locate(sheet, enlarged(r[0].image, scale)) for r in rows)
    assert x_none < x_short < x0 and x0 == x1  # the column is as wide as the longest label
    assert x0 - x_none >= sheets._width(sheets._font(sheets.LABEL_SIZE), labels[1])
    mask = dark(sheet)
    for y in (y0, y1):
        assert mask[y : y + 6 * scale, : x0 - 1].any()  # each label beside its row ...
    label_ink = np.nonzero(mask[:, : x0 - 1].any(axis=1))[0]
    label_ink = label_ink[label_ink >= y0]
    assert all(y0 <= y < y0 + 6 * scale or y1 <= y < y1 + 6 * scale for y in label_ink)  # ... and only there
    right = np.nonzero(mask[y0 : y0 + 6 * scale, :x0].any(axis=0))[0].max()
    assert right < x0 - 4  # a gap before the tiles


def test_written_atomically_and_overwrites(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "s.png"
    save_sheet(path, [[Tile(bright(0))]], title="first", scale=1)
    save_sheet(str(path), [[Tile(bright(1))]], title="second", scale=2)
    locate(read(path), enlarged(bright(1), 2))
    assert [p.name for p in path.parent.iterdir()] == ["s.png"]  # no temporary file left


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(LayerscopeError):
        save_sheet(tmp_path / "s.png", [[Tile(bright(0)), Tile(bright(1, h=7))]], title="t")
    assert list(tmp_path.iterdir()) == []


def test_bitmap_font_fallback(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bitmap = ImageFont.load_default_imagefont()
    monkeypatch.setattr(sheets, "_font", lambda size: bitmap)
    tiles = [Tile(bright(0), "a caption far too long \u2026 for this tile"), Tile(bright(1), "ok")]
    sheet = read(save_sheet(tmp_path / "s.png", [tiles], title="fc1 unit 12 \u2192 top 2", scale=6))
    spots = [locate(sheet, enlarged(t.image, 6)) for t in tiles]
    ink = np.nonzero(dark(sheet)[spots[0][0] :].any(axis=0))[0]
    assert all(any(x <= px < x + 30 for _, x in spots) for px in ink)
    assert sheets._fit(bitmap, "abcdefghijklmnop", 40).endswith("...")


def test_real_font_is_scalable() -> None:
    from PIL import features

    if not features.check("freetype2"):
        pytest.skip("Pillow without FreeType: the bitmap font is used")
    assert sheets._font(16).size == 16  # type: ignore[union-attr]
    assert sheets._line_height(sheets._font(16)) > sheets._line_height(sheets._font(9))


T = Tile(np.zeros((1, 4, 4), np.float32))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "s.jpg"}, r"does not end in \.png"),
        ({"rows": []}, "no rows"),
        ({"rows": [[T], []]}, "row 1 has no tiles"),
        ({"rows": [T]}, "rows holds Tiles directly"),
        ({"rows": [[T, Tile(np.zeros((1, 5, 4)))]]}, r"tile 1 of row 0 is 5x4 .* row 0 is 4x4"),
        ({"rows": [[T], [Tile(np.zeros((3, 4, 5)))]]}, r"tile 0 of row 1 is 4x5"),
        ({"rows": [[Tile(np.zeros((4, 4)))]]}, r"shape \(4, 4\).*C = 1 \(grey\) or 3 \(RGB\)"),
        ({"rows": [[Tile(np.zeros((2, 4, 4)))]]}, r"shape \(2, 4, 4\)"),
        ({"rows": [[Tile(np.full((1, 4, 4), np.nan))]]}, "NaN or infinite"),
        ({"rows": [[np.zeros((1, 4, 4))]]}, "not a Tile"),
        ({"rows": [[Tile(np.zeros((1, 4, 4)), caption=3)]]}, "caption of tile 0 of row 0"),  # type: ignore[arg-type]
        ({"row_labels": ["a", "b"]}, "2 labels for 1 rows"),
        ({"title": " "}, "no title"),
        ({"scale": 0}, "scale is 0"),
        ({"scale": 2.5}, "scale is 2.5"),
        ({"rows": [[Tile(np.zeros((1, 4000, 4000)))]], "scale": 8}, "too large"),
    ],
)
def test_bad_input_is_a_layerscope_error_with_one_sentence(tmp_path: Path, kwargs: dict, match: str) -> None:
    args: dict = {"path": "s.png", "rows": [[T]], "title": "t", **kwargs}
    path = tmp_path / args.pop("path")
    with pytest.raises(LayerscopeError, match=match) as info:
        save_sheet(path, **args)
    message = str(info.value)
    assert "\n" not in message and message.endswith(".") and ":" in message
    assert not path.exists()


def test_font_falls_back_to_the_bitmap_font_on_old_pillow(monkeypatch: pytest.MonkeyPatch) -> None:
    bitmap = ImageFont.load_default_imagefont()

    def load_default(size: float | None = None) -> ImageFont.ImageFont:
        if size is not None:
            raise TypeError("load_default() got an unexpected keyword argument 'size'")  # Pillow 10.0
        return bitmap

    monkeypatch.setattr(sheets.ImageFont, "load_default", load_default)
    assert sheets._font.__wrapped__(14) is bitmap
