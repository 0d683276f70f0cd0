"""Deferred pictures: the pixels a finding's picture shows, stored compactly and rendered as PNG when shown.

Encoding a PNG for every finding cost more than the network for the
cheapest detectors (issue 23). A detector instead hands
:meth:`vestige.plugin.Picture.from_pixels` the uint8 pixels, a
nearest-neighbour enlargement and a PNG compression level; the stored bytes
are a short header and the raw pixels (:data:`PIXELS_MEDIA_TYPE`). They are
hashed when the finding is stored, like any picture, so custody covers them;
the web app and the reports render them with :func:`render_png`, which is
deterministic: the same stored bytes always give the same PNG, the PNG a
detector would have encoded itself.

Layout: ``VESTIGE-PIXELS/1\\n``, one line of canonical JSON
(``{"png_compress_level": L, "shape": [H, W, C], "zoom": Z}``), then
H·W·C bytes in row-major order. Nothing is unpickled and every field is
checked before a byte is used.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from vestige.core.errors import InvalidInputError

__all__ = ["PIXELS_MEDIA_TYPE", "pack_pixels", "render_png", "shown_form", "unpack_pixels"]

#: Media type of a deferred picture's stored bytes.
PIXELS_MEDIA_TYPE = "application/vnd.vestige.pixels"
_MAGIC = b"VESTIGE-PIXELS/1\n"
_MAX_HEADER = 256
_MAX_SIDE = 8192
_MAX_ZOOM = 16


def pack_pixels(pixels: np.ndarray, *, zoom: int = 1, png_compress_level: int = 6) -> bytes:
    """The stored form of uint8 pixels, H×W (grey) or H×W×3 (RGB)."""
    array = np.ascontiguousarray(pixels)
    if array.dtype != np.uint8:
        raise InvalidInputError(f"a picture's pixels are uint8, not {array.dtype}")
    if array.ndim == 2:
        array = array[:, :, None]
    _check(list(array.shape), zoom, png_compress_level)
    header = json.dumps({"png_compress_level": png_compress_level, "shape": list(array.shape), "zoom": zoom},
                        sort_keys=True, separators=(",", ":")).encode()
    return _MAGIC + header + b"\n" + array.tobytes()


def _check(shape: Any, zoom: Any, level: Any) -> None:
    if not (isinstance(shape, list) and len(shape) == 3 and all(type(n) is int for n in shape)
            and 1 <= shape[0] <= _MAX_SIDE and 1 <= shape[1] <= _MAX_SIDE and shape[2] in (1, 3)):
        raise InvalidInputError(f"a picture's pixels are H×W or H×W×3 with sides up to {_MAX_SIDE}, not {shape}")
    if type(zoom) is not int or not 1 <= zoom <= _MAX_ZOOM or shape[0] * zoom > _MAX_SIDE or shape[1] * zoom > _MAX_SIDE:
        raise InvalidInputError(f"a picture's zoom is a whole number 1..{_MAX_ZOOM} within {_MAX_SIDE} pixels, not {zoom}")
    if type(level) is not int or not 0 <= level <= 9:
        raise InvalidInputError(f"a PNG compression level is 0..9, not {level}")


def unpack_pixels(data: bytes) -> tuple[np.ndarray, int, int]:
    """The pixels (H×W×C uint8), zoom and PNG compression level of stored deferred-picture bytes."""
    if not data.startswith(_MAGIC):
        raise InvalidInputError("these bytes are not a Vestige deferred picture (no VESTIGE-PIXELS/1 header)")
    end = data.find(b"\n", len(_MAGIC), len(_MAGIC) + _MAX_HEADER)
    if end < 0:
        raise InvalidInputError("a deferred picture's header is missing or too long")
    try:
        header = json.loads(data[len(_MAGIC):end])
    except ValueError as exc:
        raise InvalidInputError(f"a deferred picture's header is not JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidInputError("a deferred picture's header is not a JSON object")
    shape, zoom, level = header.get("shape"), header.get("zoom"), header.get("png_compress_level")
    _check(shape, zoom, level)
    body = data[end + 1:]
    if len(body) != shape[0] * shape[1] * shape[2]:
        raise InvalidInputError(f"a deferred picture of shape {shape} holds {len(body)} bytes of pixels")
    return np.frombuffer(body, dtype=np.uint8).reshape(shape), zoom, level


def render_png(data: bytes) -> bytes:
    """The PNG of stored deferred-picture bytes: enlarged by nearest neighbour, at its compression level."""
    from PIL import Image

    pixels, zoom, level = unpack_pixels(data)
    image = Image.fromarray(pixels[:, :, 0], "L") if pixels.shape[2] == 1 else Image.fromarray(pixels, "RGB")
    if zoom > 1:
        image = image.resize((image.width * zoom, image.height * zoom), Image.Resampling.NEAREST)
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=level, optimize=False)
    return out.getvalue()


def shown_form(data: bytes, media_type: str) -> tuple[bytes, str]:
    """What a page or report shows for a stored picture: a deferred one rendered as PNG, any other as stored."""
    if media_type == PIXELS_MEDIA_TYPE:
        return render_png(data), "image/png"
    return data, media_type
