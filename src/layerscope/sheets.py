"""Captioned contact sheets: rows of images drawn to one PNG with a title, a caption under each image, optional row
labels on the left and an optional footer note.

Images are enlarged ``scale`` times with nearest neighbour (pixels stay sharp) and shown unchanged: grey as grey,
RGB as RGB, each inside a thin light-grey frame on a white sheet with dark text. Text never covers an image: the
sheet is made wide enough for the title and the note, row labels get their own column, and a caption is fitted to
its image's width: all captions of a sheet share one font size, the largest (13 px down to 9 px) at which every
caption line fits; a line still too wide at 9 px is cut and ends with an ellipsis.

The font is Pillow's built-in one (scalable when Pillow has FreeType; otherwise its fixed bitmap font, which only
cuts). The file is written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from layerscope.atomic import atomic_write
from layerscope.errors import LayerscopeError

__all__ = ["Tile", "outlined", "save_sheet"]

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont

BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
FRAME = (190, 190, 190)  # 1 px around each image, so a white image still shows its edge

MARGIN = 12  # around everything
GAP = 8  # between images of a row (the frame lies inside it)
CAPTION_GAP = 4  # between an image and its caption
ROW_GAP = 12  # between one row's captions and the next row
BAND_GAP = 10  # below the title, above the note
LABEL_GAP = 12  # between the row-label column and the images

TITLE_SIZE = 16
LABEL_SIZE = 13
NOTE_SIZE = 12
CAPTION_SIZES = (13, 12, 11, 10, 9)  # tried largest first
CAPTION_LINES = 2
MAX_PIXELS = 60_000_000  # a bigger sheet is a mistake (scale far too large), not a report


@dataclass(frozen=True, eq=False)
class Tile:
    """One image of a sheet and the caption shown under it."""

    image: np.ndarray  # (C, H, W) float in [0, 1], C = 1 (grey) or 3 (RGB)
    caption: str = ""  # up to 2 short lines separated by "\n", e.g. "#1 test-8812\n7.412"


@lru_cache(maxsize=32)
def _font(size: int) -> Font:
    """Pillow's default font at ``size`` px, or its bitmap font when FreeType (or Pillow >= 10.1) is missing."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # Pillow 10.0 has no size; no FreeType
        return ImageFont.load_default()


def _scalable(font: Font) -> bool:
    return isinstance(font, ImageFont.FreeTypeFont)


def _printable(font: Font, text: str) -> str:
    """``text`` on one line, with characters the bitmap font cannot draw replaced by '?'."""
    text = " ".join(text.split())
    return text if _scalable(font) else text.encode("latin-1", "replace").decode("latin-1")


def _ellipsis(font: Font) -> str:
    return "\u2026" if _scalable(font) else "..."


def _width(font: Font, text: str) -> int:
    if not text:
        return 0
    left, _, right, _ = font.getbbox(text)
    return int(np.ceil(right - min(0, left)))


def _line_height(font: Font) -> int:
    if isinstance(font, ImageFont.FreeTypeFont):
        ascent, descent = font.getmetrics()
        return int(ascent + descent)
    return int(font.getbbox("Ag|_")[3]) + 1


def _fit(font: Font, text: str, width: int) -> str:
    """``text`` if it fits in ``width`` px, else its longest start that fits with an ellipsis after it ('' if none)."""
    text = _printable(font, text)
    if _width(font, text) <= width:
        return text
    dots = _ellipsis(font)
    lo, hi = 0, len(text)  # the longest prefix text[:n] (n < len) such that prefix + dots fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _width(font, text[:mid].rstrip() + dots) <= width:
            lo = mid
        else:
            hi = mid - 1
    if lo == 0:
        return dots if _width(font, dots) <= width else ""
    return text[:lo].rstrip() + dots


def _caption_lines(caption: str) -> list[str]:
    """The caption's lines (at most 2; what is beyond the second line joins it, to be cut with an ellipsis)."""
    lines = caption.split("\n")
    if len(lines) > CAPTION_LINES:
        lines = lines[: CAPTION_LINES - 1] + [" ".join(lines[CAPTION_LINES - 1 :])]
    while lines and not lines[-1].strip():
        lines.pop()
    return lines


def _caption_font(captions: Sequence[str], width: int) -> Font:
    """The largest caption font at which every caption line fits in ``width`` px (the smallest when none does)."""
    lines = [line for c in captions for line in _caption_lines(c)]
    for size in CAPTION_SIZES:
        font = _font(size)
        if all(_width(font, _printable(font, line)) <= width for line in lines):
            return font
    return _font(CAPTION_SIZES[-1])


def _draw_text(sheet: Image.Image, font: Font, text: str, x: int, y: int, width: int, height: int) -> None:
    """Draw one line of ``text`` with its left edge at ``x``, clipped to the box (x, y, width, height)."""
    if not text or width <= 0 or height <= 0:
        return
    stamp = Image.new("L", (width, height), 0)
    left = font.getbbox(text)[0]
    ImageDraw.Draw(stamp).text((-min(0, left), 0), text, fill=255, font=font)
    sheet.paste(TEXT, (x, y, x + width, y + height), stamp)


def _pixels(tile: object, where: str) -> np.ndarray:
    """A tile's image as (H, W, 3) uint8, checked."""
    if not isinstance(tile, Tile):
        raise LayerscopeError(
            f"{where} is a {type(tile).__name__}, not a Tile: wrap each image as Tile(image, caption)."
        )
    if not isinstance(tile.caption, str):
        raise LayerscopeError(f"the caption of {where} is a {type(tile.caption).__name__}: give it as a string.")
    try:
        a = np.asarray(tile.image, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise LayerscopeError(f"the image of {where} is not an array of numbers ({e}): give a (C, H, W) array.") from e
    if a.ndim != 3 or a.shape[0] not in (1, 3) or a.shape[1] < 1 or a.shape[2] < 1:
        raise LayerscopeError(
            f"the image of {where} has shape {a.shape}: a tile is (C, H, W) with C = 1 (grey) or 3 (RGB)."
        )
    if not np.isfinite(a).all():
        raise LayerscopeError(f"the image of {where} has NaN or infinite pixels: give values in [0, 1].")
    u8 = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    return np.repeat(u8, 3, axis=2) if u8.shape[2] == 1 else u8


def save_sheet(
    path: str | os.PathLike[str],
    rows: Sequence[Sequence[Tile]],
    *,
    title: str,
    row_labels: Sequence[str] | None = None,
    note: str = "",
    scale: int = 8,
) -> Path:
    """Draw rows of captioned images to an RGB PNG at ``path`` under a one-line ``title``; returns the path.

    ``rows``: one or more rows of Tiles (rows may differ in length), all images one height and width. ``row_labels``:
    one line left of each row. ``note``: one line at the bottom. Images are enlarged ``scale`` times. Written
    atomically; bad input raises LayerscopeError.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise LayerscopeError(f"save_sheet writes PNG files, but {str(path)!r} does not end in .png: name it *.png.")
    if isinstance(scale, bool) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise LayerscopeError(f"scale is {scale!r}: give a whole number of at least 1 (how many times to enlarge).")
    scale = int(scale)
    if not isinstance(title, str) or not title.strip():
        raise LayerscopeError("the sheet has no title: give title= a line saying what it shows (layer, unit, method).")
    if not isinstance(note, str):
        raise LayerscopeError(f"note is a {type(note).__name__}: give it as a string.")
    if isinstance(rows, Tile) or isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) or not rows:
        raise LayerscopeError("save_sheet got no rows: give a list of rows, each a list of one or more Tiles.")
    if any(isinstance(row, Tile) for row in rows):
        raise LayerscopeError("rows holds Tiles directly: give a list of rows, e.g. [[tile1, tile2, ...]].")
    for r, row in enumerate(rows):
        if not isinstance(row, Sequence) or isinstance(row, (str, bytes)) or not row:
            raise LayerscopeError(f"row {r} has no tiles: give each row one or more Tiles, or leave the row out.")
    if row_labels is not None:
        if isinstance(row_labels, str) or len(row_labels) != len(rows):
            raise LayerscopeError(
                f"row_labels has {1 if isinstance(row_labels, str) else len(row_labels)} labels for {len(rows)} "
                "rows: give one label per row, or none."
            )
        if not all(isinstance(label, str) for label in row_labels):
            raise LayerscopeError("row_labels holds something that is not a string: give one string per row.")

    pixels = [[_pixels(tile, f"tile {k} of row {r}") for k, tile in enumerate(row)] for r, row in enumerate(rows)]
    h, w = pixels[0][0].shape[:2]
    for r, row_pixels in enumerate(pixels):
        for k, p in enumerate(row_pixels):
            if p.shape[:2] != (h, w):
                raise LayerscopeError(
                    f"tile {k} of row {r} is {p.shape[0]}x{p.shape[1]} pixels but tile 0 of row 0 is {h}x{w}: "
                    "all tiles of a sheet must be one size."
                )
    tw, th = w * scale, h * scale

    # fonts and texts, measured
    title_font, label_font, note_font = _font(TITLE_SIZE), _font(LABEL_SIZE), _font(NOTE_SIZE)
    title_text = _printable(title_font, title)
    note_text = _printable(note_font, note)
    labels = [_printable(label_font, label) for label in row_labels] if row_labels is not None else None
    caption_font = _caption_font([tile.caption for row in rows for tile in row], tw)
    caption_lh = _line_height(caption_font)
    captions = [
        [[_fit(caption_font, line, tw) for line in _caption_lines(tile.caption)] for tile in row] for row in rows
    ]
    n_lines = [max(len(lines) for lines in row) for row in captions]

    label_w = max((_width(label_font, s) for s in labels), default=0) if labels else 0
    grid_x = MARGIN + (label_w + LABEL_GAP if labels else 0)
    n_cols = max(len(row) for row in rows)
    grid_w = n_cols * tw + (n_cols - 1) * GAP
    title_w, note_w = _width(title_font, title_text), _width(note_font, note_text)
    width = max(grid_x + grid_w, MARGIN + title_w, MARGIN + note_w) + MARGIN

    title_h, label_h = _line_height(title_font), _line_height(label_font)
    y = MARGIN + title_h + BAND_GAP
    row_y = []
    for lines in n_lines:
        row_y.append(y)
        y += max(th + (CAPTION_GAP + lines * caption_lh if lines else 0), label_h if labels else 0) + ROW_GAP
    y -= ROW_GAP
    note_y = y + BAND_GAP
    note_h = _line_height(note_font) if note_text else 0
    height = (note_y + note_h if note_text else y) + MARGIN
    if width * height > MAX_PIXELS:
        raise LayerscopeError(
            f"the sheet would be {width}x{height} pixels, too large to be a useful PNG: use a smaller scale ({scale})."
        )

    sheet = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(sheet)
    _draw_text(sheet, title_font, title_text, MARGIN, MARGIN, title_w, title_h)
    for r, row_pixels in enumerate(pixels):
        ty = row_y[r]
        if labels:  # in its own column, across the middle of the row's images
            _draw_text(sheet, label_font, labels[r], MARGIN, ty + max(0, (th - label_h) // 2), label_w, label_h)
        for k, p in enumerate(row_pixels):
            tx = grid_x + k * (tw + GAP)
            draw.rectangle((tx - 1, ty - 1, tx + tw, ty + th), outline=FRAME)
            big = np.repeat(np.repeat(p, scale, axis=0), scale, axis=1)  # nearest-neighbour enlargement
            sheet.paste(Image.fromarray(big, "RGB"), (tx, ty))
            for i, line in enumerate(captions[r][k]):
                lw, ly = _width(caption_font, line), ty + th + CAPTION_GAP + i * caption_lh
                _draw_text(sheet, caption_font, line, tx + (tw - lw) // 2, ly, lw, caption_lh)  # centred
    if note_text:
        _draw_text(sheet, note_font, note_text, MARGIN, note_y, note_w, note_h)

    with atomic_write(path) as f:
        sheet.save(f, format="PNG")
    return path


OUTLINE = (0.95, 0.79, 0.3)  # the yellow of a receptive field's frame, as the dashboard draws it


def outlined(image: np.ndarray, box: Sequence[int] | None) -> np.ndarray:
    """(C, H, W) in [0, 1] -> (3, H, W) with ``box`` (top, left, bottom, right; bottom and right excluded) framed in
    yellow: where a conv unit's receptive field lies in a top image. ``None`` leaves the image as it is (in RGB)."""
    rgb = np.repeat(image, 3, axis=0) if image.shape[0] == 1 else np.array(image, dtype=np.float32, copy=True)
    if box is None:
        return rgb
    top, left, bottom, right = (int(v) for v in box)
    frame = np.zeros(rgb.shape[1:], bool)
    frame[top:bottom, left:right] = True
    frame[top + 1 : bottom - 1, left + 1 : right - 1] = False
    rgb[:, frame] = np.array(OUTLINE, dtype=rgb.dtype)[:, None]
    return rgb
