"""Signs of camera originality: camera EXIF, and an embedded thumbnail that matches the picture.

A camera writes its make, model and exposure settings, and a small JPEG
thumbnail of the same picture in EXIF IFD1. Editors that rewrite the pixels
often keep the EXIF, thumbnail included, so a thumbnail that no longer looks
like the picture shows the pixels changed after capture. A matching thumbnail
and full camera EXIF are signs, not proof: both are copied in seconds.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from vestige_metadata.generator_tags import clip_text

#: Correlation (Pearson, greyscale, at the thumbnail's size) from which a thumbnail is called consistent.
CONSISTENT_SIMILARITY = 0.9
#: Relative difference of aspect ratios above which a thumbnail is reported letterboxed or cropped.
ASPECT_TOLERANCE = 0.03
#: Larger thumbnails are not decoded (the EXIF segment itself is at most 64 KiB in JPEG).
MAX_THUMBNAIL_BYTES = 2**20
MAX_THUMBNAIL_SIDE = 1024
#: EXIF tags a camera writes when it exposes a picture (Exif IFD).
CAPTURE_TAGS = {
    ExifTags.Base.DateTimeOriginal: "DateTimeOriginal",
    ExifTags.Base.ExposureTime: "ExposureTime",
    ExifTags.Base.FNumber: "FNumber",
    ExifTags.Base.ISOSpeedRatings: "ISOSpeedRatings",
    ExifTags.Base.FocalLength: "FocalLength",
    ExifTags.Base.LensModel: "LensModel",
}


def _thumbnail_bytes(exif: Image.Exif, raw: bytes | None) -> bytes | None:
    """The JPEG thumbnail that IFD1 points to inside the raw EXIF block, if there is one."""
    if not raw:
        return None
    tiff = raw[6:] if raw.startswith(b"Exif\x00\x00") else raw
    try:
        ifd1 = exif.get_ifd(ExifTags.IFD.IFD1)
    except Exception:  # a malformed IFD1 is a file without a usable thumbnail
        return None
    offset = ifd1.get(ExifTags.Base.JpegIFOffset)
    length = ifd1.get(ExifTags.Base.JpegIFByteCount)
    if not isinstance(offset, int) or not isinstance(length, int) or length <= 0 or length > MAX_THUMBNAIL_BYTES:
        return None
    data = tiff[offset:offset + length]
    return data if len(data) == length else None


def _grey_at(data: bytes, image: Image.Image, size: tuple[int, int]) -> np.ndarray:
    """The picture in greyscale at ``size``; a JPEG is decoded at a reduced scale, which is fast."""
    with Image.open(io.BytesIO(data)) as source:
        if source.format == "JPEG":
            source.draft("RGB", (size[0] * 2, size[1] * 2))
            return np.asarray(source.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float64)
    return np.asarray(image.convert("L").resize(size, Image.Resampling.BOX), dtype=np.float64)


def thumbnail_similarity(thumbnail: Image.Image, data: bytes, image: Image.Image) -> float:
    """Pearson correlation of the thumbnail and the picture brought to the thumbnail's size."""
    thumb = np.asarray(thumbnail.convert("L"), dtype=np.float64)
    picture = _grey_at(data, image, thumbnail.size)
    a, b = thumb - thumb.mean(), picture - picture.mean()
    denominator = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / denominator) if denominator > 0 else 0.0


def _thumbnail_evidence(exif: Image.Exif, raw: bytes | None, data: bytes, image: Image.Image) -> dict[str, Any]:
    thumb_data = _thumbnail_bytes(exif, raw)
    if thumb_data is None:
        return {"present": False}
    try:
        with Image.open(io.BytesIO(thumb_data)) as thumb:
            if max(thumb.size) > MAX_THUMBNAIL_SIDE or min(thumb.size) < 8:
                return {"present": True, "readable": False, "size": list(thumb.size)}
            thumb.load()
            similarity = thumbnail_similarity(thumb, data, image)
            size = thumb.size
    except Exception:  # Pillow raises many kinds on a corrupt JPEG
        return {"present": True, "readable": False}
    aspect_difference = abs(size[0] / size[1] - image.width / image.height) / (image.width / image.height)
    return {
        "present": True,
        "readable": True,
        "size": list(size),
        "similarity": similarity,
        "threshold": CONSISTENT_SIMILARITY,
        "aspect_ratio_matches": aspect_difference <= ASPECT_TOLERANCE,
        "consistent": similarity >= CONSISTENT_SIMILARITY,
    }


def read_camera_signs(data: bytes, image: Image.Image, exif: Image.Exif, raw_exif: bytes | None) -> dict[str, Any]:
    """Camera make/model, the capture tags present, and whether the EXIF thumbnail matches the picture."""
    make = clip_text(str(exif.get(ExifTags.Base.Make, "") or "").strip(), 80)
    model = clip_text(str(exif.get(ExifTags.Base.Model, "") or "").strip(), 80)
    try:
        exif_ifd = exif.get_ifd(ExifTags.IFD.Exif)
    except Exception:  # a malformed Exif IFD leaves only IFD0 to read
        exif_ifd = {}
    capture_tags = sorted(name for tag, name in CAPTURE_TAGS.items() if tag in exif_ifd)
    thumbnail = _thumbnail_evidence(exif, raw_exif, data, image)
    signs = []
    if make or model:
        signs.append(f"camera EXIF {' '.join(filter(None, (make, model)))}")
    if capture_tags:
        signs.append(f"capture tags {', '.join(capture_tags)}")
    if thumbnail.get("consistent"):
        signs.append(f"EXIF thumbnail matches the picture (similarity {thumbnail['similarity']:.3f})")
    return {
        "camera_make": make or None,
        "camera_model": model or None,
        "capture_tags": capture_tags,
        "thumbnail": thumbnail,
        "signs": signs,
        "thumbnail_mismatch": thumbnail.get("consistent") is False,
    }
