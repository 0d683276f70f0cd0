"""Fingerprints as pictures a reviewer can look at (PNG, Pillow only).

A fingerprint is a signed array (3×S×S). It is contrast-stretched
symmetrically about zero, so mid-grey is 0 and the strongest 0.5 % of
values saturate: ``v / q`` mapped from [-1, 1] to [0, 255], ``q`` the
99.5th percentile of |v|. Small pictures are enlarged by nearest-neighbour
(×4 at 32²) so single pixels stay visible.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

#: Side a fingerprint picture is enlarged to, at least (nearest-neighbour, whole factors).
DISPLAY_SIDE = 128


def stretch(fingerprint: np.ndarray) -> np.ndarray:
    """A signed C×H×W array as uint8 H×W×3, zero at mid-grey."""
    values = np.asarray(fingerprint, dtype=np.float64)
    scale = float(np.percentile(np.abs(values), 99.5))
    if not scale > 0:
        scale = 1.0
    pixels = np.clip(values / scale, -1.0, 1.0) * 127.5 + 127.5
    return np.round(pixels).astype(np.uint8).transpose(1, 2, 0)


def display_zoom(width: int, height: int) -> int:
    """The whole nearest-neighbour factor that brings a picture to :data:`DISPLAY_SIDE` (1 when it is larger)."""
    return max(1, DISPLAY_SIDE // max(width, height))


def enlarge(image: Image.Image) -> Image.Image:
    factor = display_zoom(*image.size)
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def fingerprint_png(fingerprint: np.ndarray) -> bytes:
    """The PNG of one fingerprint, stretched and enlarged."""
    buf = io.BytesIO()
    enlarge(Image.fromarray(stretch(fingerprint), "RGB")).save(buf, "PNG")
    return buf.getvalue()


def fingerprint_grid_png(fingerprints: np.ndarray, labels: Sequence[str], *, columns: int = 4) -> bytes:
    """All model fingerprints (K×3×S×S) in one PNG, each stretched on its own and labelled underneath."""
    if len(fingerprints) != len(labels):
        raise ValueError("one label per fingerprint")
    tiles = [enlarge(Image.fromarray(stretch(f), "RGB")) for f in fingerprints]
    font = ImageFont.load_default(size=13)
    tile_w, tile_h = tiles[0].size
    label_h, pad = 20, 8
    columns = max(1, min(columns, len(tiles)))
    rows = -(-len(tiles) // columns)
    canvas = Image.new("RGB", (pad + columns * (tile_w + pad), pad + rows * (tile_h + label_h + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (tile, label) in enumerate(zip(tiles, labels)):
        x = pad + (i % columns) * (tile_w + pad)
        y = pad + (i // columns) * (tile_h + label_h + pad)
        canvas.paste(tile, (x, y))
        left, _, right, _ = draw.textbbox((0, 0), label, font=font)
        draw.text((x + max(0, (tile_w - (right - left)) // 2), y + tile_h + 3), label, fill="black", font=font)
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def model_fingerprint_grid(artifact, *, columns: int = 4) -> bytes:
    """The labelled grid of an auto-encoder artifact's model fingerprints (an :class:`ArtifactFile`)."""
    kernels = artifact.tensors().get("model_fingerprints")
    if kernels is None:
        from vestige.plugin import InvalidInputError

        raise InvalidInputError(f"model artifact {artifact.sha256[:12]}… is the {artifact.info.get('variant')} variant, "
                                "which has no model fingerprints; use an autoencoder artifact")
    return fingerprint_grid_png(kernels.astype(np.float32), list(artifact.info["sources"]), columns=columns)
