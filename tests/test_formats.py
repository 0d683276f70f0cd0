"""Which image formats Vestige takes, decided per format from one documented list (issue 21, item 10)."""

from __future__ import annotations

import struct

import pytest

from conftest import encode, photo
from vestige.core.errors import InvalidImageError
from vestige.evidence.imagefile import SUPPORTED_FORMATS, inspect_image, sniff_format


def ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


def test_avif_is_accepted_because_pillow_reads_it():
    data = encode(photo(30, 96), "AVIF")
    facts = inspect_image(data, name="a.avif")
    assert (facts.format, facts.media_type, facts.width) == ("AVIF", "image/avif", 96)
    assert SUPPORTED_FORMATS["AVIF"] == "image/avif"


def test_avif_is_known_by_its_compatible_brand_too():
    assert sniff_format(ftyp(b"mif1", b"mif1", b"avif") + b"\x00" * 8) == "AVIF"
    assert sniff_format(ftyp(b"avis", b"avis", b"msf1") + b"\x00" * 8) == "AVIF"


@pytest.mark.parametrize("brand", [b"heic", b"heix", b"hevc", b"mif1"])
def test_heic_is_refused_in_one_sentence_that_says_so(brand):
    data = ftyp(brand, b"mif1", b"heic" if brand == b"mif1" else brand) + b"\x00" * 64
    with pytest.raises(InvalidImageError) as refused:
        inspect_image(data, name="IMG_0001.HEIC")
    message = str(refused.value)
    assert message.startswith("IMG_0001.HEIC is not a supported image type (JPEG, PNG, WebP, TIFF, BMP, GIF, AVIF)")
    assert "HEIC" in message and "not supported" in message and "\n" not in message


def test_an_avif_file_is_ingested_and_served_with_its_media_type(vestige, tmp_path):
    import json

    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", "FMT-1", "--title", "Formats").exit_code == 0
    path = tmp_path / "phone.avif"
    path.write_bytes(encode(photo(31, 96), "AVIF"))
    result = vestige("ingest", "FMT-1", path)
    assert result.exit_code == 0 and result.stdout.startswith("ingested 1,"), result.stderr
    (row,) = json.loads(vestige("images", "FMT-1", "--json").stdout)
    assert row["format"] == "AVIF"
