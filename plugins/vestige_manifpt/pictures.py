"""What a reviewer is shown: the artifact, the nearest reference, and the structure grid (Pillow only)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Pixel pictures are enlarged this many times (nearest neighbour), so 32² becomes 128².
ZOOM = 4


def _png(image: Image.Image, level: int = 1) -> bytes:
    """PNG bytes at compression ``level``."""
    buf = io.BytesIO()
    image.save(buf, "PNG", compress_level=level, optimize=False)
    return buf.getvalue()


def stretch(values: np.ndarray) -> np.ndarray:
    """Symmetric contrast stretch to uint8: 0 is mid-grey, the 99.5th percentile of |value| is full scale."""
    values = np.asarray(values, dtype=np.float64)
    scale = float(np.percentile(np.abs(values), 99.5)) if values.size else 0.0
    if scale <= 0:
        return np.full(values.shape, 128, dtype=np.uint8)
    return np.clip(np.round(128 + 127 * values / scale), 0, 255).astype(np.uint8)


#: Compression level the two pictures of every finding are rendered at (level 9 took 30 ms a picture, 70 % of
#: analyze when they were encoded per finding; they are deferred now: vestige.plugin.pixels).
FINDING_PNG_LEVEL = 1


def artifact_pixels(artifact: np.ndarray, space: str) -> tuple[np.ndarray, int]:
    """The artifact as uint8 RGB pixels and the zoom it is shown at: rgb as colours, freq as the centred
    spectrum difference, sl as an 8×16 grid of grey cells."""
    a = np.asarray(artifact, dtype=np.float64)
    if space == "sl":
        grid = np.zeros(128)
        grid[: min(128, a.size)] = a.ravel()[:128]
        grey = stretch(grid.reshape(8, 16))
        return np.repeat(grey[:, :, None], 3, axis=2), 8
    chw = a.reshape(3, 32, 32)
    if space == "freq":
        chw = np.fft.fftshift(chw, axes=(1, 2))
    return stretch(chw.transpose(1, 2, 0)), ZOOM


def fingerprint_grid_png(spectra: Sequence[np.ndarray], labels: Sequence[Sequence[str]], title: str) -> bytes:
    """One tile per model: its mean artifact spectrum (32×32, log scale, centred), captioned with its lines."""
    font = ImageFont.load_default(size=11)
    big = ImageFont.load_default(size=13)
    tile = 32 * ZOOM
    line_h = 14
    n_lines = max((len(lines) for lines in labels), default=1)
    cell_w = max([tile, *(int(font.getlength(s)) + 8 for lines in labels for s in lines)])
    cell_h = tile + n_lines * line_h + 10
    cols = min(4, max(1, len(spectra)))
    rows = (len(spectra) + cols - 1) // cols
    width = max(cols * cell_w + 16, int(big.getlength(title)) + 16)
    image = Image.new("RGB", (width, 30 + rows * cell_h), "white")
    draw = ImageDraw.Draw(image)
    draw.text((8, 8), title, fill="black", font=big)
    for i, (spectrum, lines) in enumerate(zip(spectra, labels)):
        x0, y0 = 8 + (i % cols) * cell_w, 30 + (i // cols) * cell_h
        s = np.asarray(spectrum, dtype=np.float64)
        lo, hi = np.percentile(s, 1), np.percentile(s, 99.5)
        grey = np.clip((s - lo) / max(hi - lo, 1e-12) * 255, 0, 255).astype(np.uint8)
        image.paste(Image.fromarray(grey, "L").convert("RGB").resize((tile, tile), Image.NEAREST), (x0, y0))
        for j, text in enumerate(lines):
            draw.text((x0, y0 + tile + 3 + j * line_h), text, fill="black", font=font)
    return _png(image, 9)
