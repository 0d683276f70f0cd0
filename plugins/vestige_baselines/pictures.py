"""Pictures of residuals and fingerprints that a reviewer can actually see.

A residual is a few grey levels either side of zero; shown as it is it is a
flat grey square. It is stretched symmetrically (zero stays mid-grey, the
99.5th percentile of its magnitude goes to black/white, the three channels
together so colour noise shows as colour) and enlarged with nearest-neighbour
sampling until it is at least :data:`MIN_SIDE` pixels wide (×4 for 32×32), so
single-pixel patterns stay single, sharp blocks.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_SIDE = 128
STRETCH_PERCENTILE = 99.5


def enlargement(side: int) -> int:
    """The integer factor that brings ``side`` to at least :data:`MIN_SIDE`."""
    return max(1, math.ceil(MIN_SIDE / max(side, 1)))


def stretch(residual: np.ndarray) -> Image.Image:
    """A signed ``(H, W, 3)`` array as an RGB picture, zero at mid-grey, enlarged for viewing."""
    scale = float(np.percentile(np.abs(residual), STRETCH_PERCENTILE)) or 1.0
    values = np.clip(residual / scale, -1.0, 1.0) * 127.5 + 127.5
    image = Image.fromarray(np.rint(values).astype(np.uint8), "RGB")
    factor = enlargement(max(image.size))
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def png_bytes(image: Image.Image) -> bytes:
    """PNG with no metadata, so the same picture is the same bytes."""
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def residual_png(residual: np.ndarray) -> bytes:
    """The stretched, enlarged residual (or fingerprint) as PNG bytes."""
    return png_bytes(stretch(residual))


def labelled_grid(tiles: Mapping[str, np.ndarray], *, columns: int = 4, title: str | None = None) -> bytes:
    """Several signed arrays side by side, each stretched on its own, named beneath; PNG bytes."""
    pictures = {name: stretch(array) for name, array in tiles.items()}
    if not pictures:
        raise ValueError("nothing to draw")
    font = ImageFont.load_default()
    tile_w = max(p.width for p in pictures.values())
    tile_h = max(p.height for p in pictures.values())
    label_h, gap = 18, 8
    top = label_h if title else 0
    columns = max(1, min(columns, len(pictures)))
    rows = math.ceil(len(pictures) / columns)
    grid = Image.new("RGB", (gap + columns * (tile_w + gap), top + gap + rows * (tile_h + label_h + gap)), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((gap, 4), title, fill="black", font=font)
    for i, (name, picture) in enumerate(pictures.items()):
        x = gap + (i % columns) * (tile_w + gap)
        y = top + gap + (i // columns) * (tile_h + label_h + gap)
        grid.paste(picture, (x, y))
        draw.text((x, y + tile_h + 3), _fit(draw, name, font, tile_w), fill="black", font=font)
    return png_bytes(grid)


def _fit(draw: ImageDraw.ImageDraw, text: str, font: ImageFont.ImageFont | ImageFont.FreeTypeFont, width: int) -> str:
    """``text``, shortened with an ellipsis until it fits ``width`` pixels."""
    if draw.textlength(text, font=font) <= width:
        return text
    while text and draw.textlength(text + "…", font=font) > width:
        text = text[:-1]
    return text + "…"
