"""Pictures Vestige draws for people: benchmark figures, drawn with Pillow alone."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from PIL import Image, ImageDraw, ImageFont

__all__ = ["confusion_png", "heatmap_png"]

_DARK = (8, 48, 107)
_GRID = (200, 200, 200)
_PAD = 8


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_size(font: ImageFont.FreeTypeFont | ImageFont.ImageFont, text: str) -> tuple[int, int]:
    left, top, right, bottom = font.getbbox(text)
    return int(right - left), int(bottom - top)


def _shade(fraction: float) -> tuple[int, int, int]:
    return tuple(round(255 + (d - 255) * fraction) for d in _DARK)  # type: ignore[return-value]


def confusion_png(matrix: Sequence[Sequence[int]], row_labels: Sequence[str], col_labels: Sequence[str], title: str) -> bytes:
    """A confusion matrix as a PNG: true labels down the side, predicted along the top.

    Each cell shows its count; its shade is the count over its row's total,
    so a row reads as "where the images of this source went" whatever the
    number of images per source.
    """
    if len(matrix) != len(row_labels) or any(len(row) != len(col_labels) for row in matrix):
        raise ValueError("the matrix must have one row per row label and one column per column label")
    font, small = _font(13), _font(11)
    biggest = max([0, *(v for row in matrix for v in row)])
    cell_w = max(34, _text_size(small, str(biggest))[0] + 10)
    cell_h = 22
    label_w = max([40, *(_text_size(small, s)[0] for s in row_labels)]) + _PAD
    label_h = max([40, *(_text_size(small, s)[0] for s in col_labels)]) + _PAD
    title_h = _text_size(font, title or "x")[1] + 2 * _PAD
    axis = 18  # room for the axis names
    left = _PAD + axis + label_w
    top = title_h + axis + label_h
    width = max(left + cell_w * len(col_labels) + _PAD, _text_size(font, title)[0] + 2 * _PAD)
    height = top + cell_h * len(row_labels) + _PAD
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((_PAD, _PAD), title, fill="black", font=font)
    draw.text((left, title_h), "predicted", fill="black", font=small)
    _paste_text(image, _rotated("true", small), (_PAD, top))
    for j, label in enumerate(col_labels):
        strip = _rotated(label, small)
        _paste_text(image, strip, (left + j * cell_w + (cell_w - strip.width) // 2, top - _PAD // 2 - strip.height))
    for i, label in enumerate(row_labels):
        w, h = _text_size(small, label)
        draw.text((left - _PAD // 2 - w, top + i * cell_h + (cell_h - h) // 2 - 1), label, fill="black", font=small)
        total = sum(matrix[i])
        for j, value in enumerate(matrix[i]):
            fraction = value / total if total else 0.0
            x0, y0 = left + j * cell_w, top + i * cell_h
            draw.rectangle((x0, y0, x0 + cell_w, y0 + cell_h), fill=_shade(fraction), outline=_GRID)
            text = str(value)
            tw, th = _text_size(small, text)
            colour = "white" if fraction > 0.5 else "black"
            draw.text((x0 + (cell_w - tw) // 2, y0 + (cell_h - th) // 2 - 1), text, fill=colour, font=small)
    buf = io.BytesIO()
    image.save(buf, "PNG", optimize=False, compress_level=9)
    return buf.getvalue()


def _rotated(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> Image.Image:
    """A mask of ``text`` reading bottom to top."""
    x0, y0, x1, y1 = font.getbbox(text)
    strip = Image.new("L", (int(x1 - x0) + 2, int(y1 - y0) + 2), 0)
    ImageDraw.Draw(strip).text((1 - x0, 1 - y0), text, fill=255, font=font)
    return strip.rotate(90, expand=True)


def _paste_text(image: Image.Image, mask: Image.Image, at: tuple[int, int]) -> None:
    image.paste((0, 0, 0), (at[0], at[1], at[0] + mask.width, at[1] + mask.height), mask)


#: Colours of 0, ½ and 1 in a heat map (a diverging blue–grey–red ramp that stays readable in print).
_RAMP = ((59, 76, 192), (221, 221, 221), (180, 4, 38))
#: Longest side of a heat map's image part; smaller images are enlarged (nearest) to at least half of it.
HEATMAP_SIDE = 512


def ramp(value: float) -> tuple[int, int, int]:
    """The heat-map colour of a probability in [0, 1]."""
    v = min(1.0, max(0.0, float(value))) * 2
    low, high = (_RAMP[0], _RAMP[1]) if v <= 1 else (_RAMP[1], _RAMP[2])
    t = v if v <= 1 else v - 1
    return tuple(round(a + (b - a) * t) for a, b in zip(low, high))  # type: ignore[return-value]


def heatmap_png(picture: Image.Image | None, size: tuple[int, int], cells: Sequence[tuple[int, int, int, int]],
                values: Sequence[float], inside: Sequence[bool], *, title: str) -> bytes:
    """Per-region probabilities laid over a greyed copy of the image, with a colour bar.

    ``cells`` are boxes (x0, y0, x1, y1) in the image's pixels, ``values``
    their probabilities in [0, 1]; a cell not ``inside`` the validated domain
    is hatched grey instead, and the image outside every cell is dimmed (not
    analysed). ``picture`` may be ``None`` (a grey canvas of ``size``).
    """
    width, height = size
    scale = min(HEATMAP_SIDE / max(width, height), max(1, (HEATMAP_SIDE // 2) // max(width, height)))
    out_w, out_h = max(1, round(width * scale)), max(1, round(height * scale))
    if picture is None:
        base = Image.new("L", (out_w, out_h), 160)
    else:
        resample = Image.Resampling.NEAREST if scale >= 1 else Image.Resampling.BILINEAR
        base = picture.convert("L").resize((out_w, out_h), resample)
    grey = np.asarray(base, dtype=np.float32)
    rgb = np.repeat((grey * 0.45)[:, :, None], 3, axis=2)  # not analysed: dimmed
    for (x0, y0, x1, y1), value, ok in zip(cells, values, inside):
        box = (slice(round(y0 * scale), round(y1 * scale)), slice(round(x0 * scale), round(x1 * scale)))
        under = grey[box][:, :, None]
        if ok:
            rgb[box] = 0.45 * under + 0.55 * np.asarray(ramp(value), dtype=np.float32)
        else:
            yy, xx = np.mgrid[box[0], box[1]]
            hatch = ((xx + yy) % 8 < 2)[:, :, None]
            rgb[box] = np.where(hatch, 90.0, 0.5 * under + 0.5 * 200.0)
    font = _font(12)
    bar_h, text_h = 12, _text_size(font, "0.5")[1]
    legend_h = _PAD + text_h + _PAD + bar_h + 4 + text_h + _PAD
    canvas_w = max(out_w, 260)
    canvas = Image.new("RGB", (canvas_w, out_h + legend_h), "white")
    canvas.paste(Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), "RGB"), (0, 0))
    draw = ImageDraw.Draw(canvas)
    y = out_h + _PAD
    draw.text((_PAD, y), title, fill="black", font=font)
    y += text_h + _PAD
    bar_w = canvas_w - 2 * _PAD
    for i in range(bar_w):
        draw.line((_PAD + i, y, _PAD + i, y + bar_h), fill=ramp(i / max(1, bar_w - 1)))
    for label, frac in (("0", 0.0), ("0.5", 0.5), ("1", 1.0)):
        tw = _text_size(font, label)[0]
        draw.text((min(canvas_w - _PAD - tw, max(_PAD, _PAD + frac * bar_w - tw / 2)), y + bar_h + 4), label,
                  fill="black", font=font)
    buf = io.BytesIO()
    # zlib level 6: level 9 took 0.5 s for a 512-pixel map (one per detector and image) for 12 % fewer bytes
    canvas.save(buf, "PNG", optimize=False, compress_level=6)
    return buf.getvalue()
