"""Deferred pictures (vestige.plugin.pixels): stored as raw pixels behind a one-line header, hashed like any
picture, rendered deterministically as PNG when shown; hostile bytes refused with one sentence."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image

from vestige.plugin import InvalidInputError, Picture
from vestige.plugin.pixels import PIXELS_MEDIA_TYPE, pack_pixels, render_png, shown_form, unpack_pixels


def _pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.mark.parametrize("shape", [(32, 32, 3), (8, 16), (1, 1, 3), (5, 7, 1)])
def test_pixels_round_trip_and_render_as_the_png_of_the_enlarged_pixels(shape):
    pixels = _pixels(shape)
    stored = pack_pixels(pixels, zoom=3, png_compress_level=1)
    back, zoom, level = unpack_pixels(stored)
    assert np.array_equal(back.reshape(pixels.shape), pixels) and (zoom, level) == (3, 1)
    png = render_png(stored)
    assert png == render_png(stored)  # deterministic
    with Image.open(io.BytesIO(png)) as shown:
        assert shown.format == "PNG" and shown.size == (shape[1] * 3, shape[0] * 3)
        assert np.array_equal(np.asarray(shown).reshape(shape[0] * 3, shape[1] * 3, -1)[::3, ::3].reshape(pixels.shape),
                              pixels)


def test_a_deferred_picture_is_hashed_as_stored_and_shown_as_png():
    picture = Picture.from_pixels("residual", "Noise residual", _pixels((32, 32, 3)), zoom=4)
    assert picture.media_type == PIXELS_MEDIA_TYPE and picture.sha256 == hashlib.sha256(picture.data).hexdigest()
    assert picture.to_dict()["sha256"] == picture.sha256 and len(picture.data) < 32 * 32 * 3 + 100
    shown, media_type = shown_form(picture.data, picture.media_type)
    assert media_type == "image/png" and shown == render_png(picture.data)
    png = b"\x89PNG\r\n\x1a\n..."
    assert shown_form(png, "image/png") == (png, "image/png")  # any other picture is shown as stored


@pytest.mark.parametrize("data, says", [
    (b"\x89PNG\r\n\x1a\n", "not a Vestige deferred picture"),
    (b"VESTIGE-PIXELS/1\n" + b"x" * 400, "header is missing or too long"),
    (b"VESTIGE-PIXELS/1\n{nope}\n", "not JSON"),
    (b"VESTIGE-PIXELS/1\n[1,2]\n", "not a JSON object"),
    (b'VESTIGE-PIXELS/1\n{"png_compress_level":6,"shape":[2,2,4],"zoom":1}\n' + bytes(16), "H×W or H×W×3"),
    (b'VESTIGE-PIXELS/1\n{"png_compress_level":6,"shape":[100000,2,3],"zoom":1}\n', "H×W or H×W×3"),
    (b'VESTIGE-PIXELS/1\n{"png_compress_level":6,"shape":[2,2,3],"zoom":99}\n' + bytes(12), "zoom"),
    (b'VESTIGE-PIXELS/1\n{"png_compress_level":10,"shape":[2,2,3],"zoom":1}\n' + bytes(12), "compression level"),
    (b'VESTIGE-PIXELS/1\n{"png_compress_level":6,"shape":[2,2,3],"zoom":1}\n' + bytes(11), "holds 11 bytes"),
])
def test_hostile_stored_bytes_are_refused_in_one_sentence(data, says):
    with pytest.raises(InvalidInputError, match=says):
        render_png(data)


def test_only_uint8_pixels_are_packed():
    with pytest.raises(InvalidInputError, match="uint8"):
        pack_pixels(np.zeros((4, 4, 3), dtype=np.float32))
