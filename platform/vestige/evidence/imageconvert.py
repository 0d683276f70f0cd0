"""Converting any decoded image to the 8-bit RGB picture detectors and hashes work on.

16-bit, integer and float modes are scaled, palettes expanded, alpha
composited on white, CMYK and LAB converted to sRGB.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageCms

from vestige.core.errors import InvalidImageError


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a single-channel integer or float array to 0..255."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        a = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif not (lo >= 0.0 and hi <= 255.0):
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    a = array.astype(np.int64)
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 255 and array.dtype.itemsize == 4:
        return a.astype(np.uint8)  # "I" images that only use 8 bits
    if lo >= 0 and (hi <= 65535 or array.dtype.itemsize == 2):
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    if hi == lo:
        return np.zeros(a.shape, np.uint8)
    return ((a - lo) * 255 // (hi - lo)).astype(np.uint8)


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return background


@functools.cache
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB version of ``image`` for detectors and hashes.

    Alpha is composited on white (palette transparency included); 16-bit and
    32-bit integer and float greyscale are scaled to 0..255 rather than
    clipped; palette, greyscale, CMYK and YCbCr images are converted. An RGB
    image is returned as it is, not copied.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        if "transparency" in image.info or image.palette is not None and image.palette.mode == "RGBA":
            return _composite_on_white(image.convert("RGBA"))
        return image.convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "PA"):
        return _composite_on_white(image.convert("RGBA"))
    if mode == "La":  # premultiplied; Pillow only un-premultiplies it to LA
        return _composite_on_white(image.convert("LA").convert("RGBA"))
    if mode == "L" and "transparency" in image.info:
        return _composite_on_white(image.convert("RGBA"))
    if mode in ("1", "L", "CMYK", "YCbCr", "HSV", "RGBX"):
        return image.convert("RGB")
    if mode.startswith("I") or mode == "F":
        gray = Image.fromarray(_to_uint8(np.asarray(image)))
        return gray.convert("RGB")
    if mode == "LAB":  # CIELab TIFFs; a plain convert would copy the channels as they are
        try:
            return ImageCms.applyTransform(image, _lab_to_srgb())
        except (ImportError, OSError, ImageCms.PyCMSError):
            pass
    try:
        return image.convert("RGB")
    except ValueError:
        raise InvalidImageError(f"The image's colour mode {mode} cannot be converted to RGB.") from None
