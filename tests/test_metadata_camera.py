"""Camera originality signs, for real: JPEGs carrying camera EXIF and an embedded EXIF thumbnail.

The EXIF blocks are written with Pillow, then an IFD1 with a JPEG thumbnail
is appended the way cameras store it, so the detector reads what a camera
file holds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
from PIL import ExifTags, Image

from conftest import encode, photo

CAMERA = {ExifTags.Base.Make: "Canon", ExifTags.Base.Model: "Canon EOS R5"}
EXPOSURE = {ExifTags.Base.DateTimeOriginal: "2026:03:14 09:26:53", ExifTags.Base.ExposureTime: 0.004,
            ExifTags.Base.FNumber: 5.6, ExifTags.Base.ISOSpeedRatings: 200, ExifTags.Base.FocalLength: 35.0}


def exif_block(tags: dict[int, object], exposure: dict[int, object], thumbnail: bytes | None) -> bytes:
    """An APP1 EXIF block: IFD0 with ``tags``, the Exif IFD, and IFD1 pointing at a JPEG ``thumbnail``."""
    exif = Image.Exif()
    for tag, value in tags.items():
        exif[tag] = value
    if exposure:
        exif[ExifTags.IFD.Exif] = dict(exposure)
    raw = exif.tobytes()
    if thumbnail is None:
        return raw
    tiff = bytearray(raw[6:])
    order = "<" if tiff[:2] == b"II" else ">"
    entries = struct.unpack_from(order + "H", tiff, 8)[0]
    tiff += b"\0" * (len(tiff) % 2)
    ifd1 = len(tiff)
    struct.pack_into(order + "I", tiff, 8 + 2 + 12 * entries, ifd1)  # IFD0's "next IFD" now points to IFD1
    thumb_at = ifd1 + 2 + 3 * 12 + 4
    tiff += struct.pack(order + "H", 3)
    tiff += struct.pack(order + "HHIHH", ExifTags.Base.Compression, 3, 1, 6, 0)  # 6: JPEG
    tiff += struct.pack(order + "HHII", ExifTags.Base.JpegIFOffset, 4, 1, thumb_at)
    tiff += struct.pack(order + "HHII", ExifTags.Base.JpegIFByteCount, 4, 1, len(thumbnail))
    tiff += struct.pack(order + "I", 0) + thumbnail
    return b"Exif\x00\x00" + bytes(tiff)


def camera_jpeg(seed: int, *, thumbnail_of: int | None, exposure: bool = True, size: int = 480) -> bytes:
    """A camera-like JPEG; its thumbnail is of picture ``thumbnail_of`` (the same seed: consistent)."""
    picture = photo(seed, size).resize((size * 3 // 2, size), Image.Resampling.BICUBIC)
    thumbnail = None
    if thumbnail_of is not None:
        source = photo(thumbnail_of, size).resize((size * 3 // 2, size), Image.Resampling.BICUBIC)
        thumbnail = encode(source.resize((160, 107), Image.Resampling.LANCZOS), "JPEG", quality=85)
    return encode(picture, "JPEG", quality=92, exif=exif_block(CAMERA, EXPOSURE if exposure else {}, thumbnail))


FIXTURES = {
    "thumbnail-consistent.jpg": camera_jpeg(21, thumbnail_of=21),
    "thumbnail-of-another-picture.jpg": camera_jpeg(22, thumbnail_of=23),
    "camera-exif-no-thumbnail.jpg": camera_jpeg(24, thumbnail_of=None, exposure=False),
}


@pytest.fixture
def rows(vestige, tmp_path) -> dict[str, dict]:
    paths = []
    for name, data in FIXTURES.items():
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    result = vestige("detect", *paths, "--detector", "metadata", "--json")
    assert result.exit_code == 0, result.stderr
    return {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}


# file, thumbnail consistent?, capture tags
EXPECTED = [
    ("thumbnail-consistent.jpg", True, ["DateTimeOriginal", "ExposureTime", "FNumber", "FocalLength", "ISOSpeedRatings"]),
    ("thumbnail-of-another-picture.jpg", False, ["DateTimeOriginal", "ExposureTime", "FNumber", "FocalLength",
                                                 "ISOSpeedRatings"]),
    ("camera-exif-no-thumbnail.jpg", None, []),
]


@pytest.mark.parametrize(("name", "consistent", "capture_tags"), EXPECTED, ids=[e[0] for e in EXPECTED])
def test_camera_signs_are_reported_and_never_make_a_verdict(rows, name, consistent, capture_tags):
    row = rows[name]
    camera = row["evidence"]["camera"]
    assert (row["label"], row["source"]) == ("unknown", None)
    assert (camera["camera_make"], camera["camera_model"]) == ("Canon", "Canon EOS R5")
    assert camera["capture_tags"] == capture_tags
    assert camera["thumbnail"].get("consistent") is consistent
    assert camera["thumbnail"]["present"] is (consistent is not None)


def test_thumbnail_similarity_separates_the_same_picture_from_another(rows):
    same = rows["thumbnail-consistent.jpg"]["evidence"]["camera"]["thumbnail"]
    other = rows["thumbnail-of-another-picture.jpg"]["evidence"]["camera"]["thumbnail"]
    assert same["size"] == [160, 107] and same["aspect_ratio_matches"] is True
    assert same["similarity"] >= 0.95
    assert other["similarity"] < 0.5
    assert same["threshold"] == other["threshold"] == 0.9


def test_why_unknown_names_the_strongest_camera_sign(rows):
    assert "EXIF thumbnail does not match" in rows["thumbnail-of-another-picture.jpg"]["evidence"]["why_unknown"]
    assert "camera EXIF is present" in rows["thumbnail-consistent.jpg"]["evidence"]["why_unknown"]
