"""Stable Diffusion watermarks, for real: images marked with invisible-watermark's encoder as the pipelines do.

SD v1's scripts convert RGB to BGR and embed the bytes of ``StableDiffusionV1``;
diffusers' SDXL watermarker hands the encoder RGB as it is and embeds a fixed
48-bit pattern. What survives is measured, not assumed: the marks survive
4:4:4 JPEG at quality 80, and are erased by 4:2:0 JPEG (the usual default)
and by halving the size.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from imwatermark import WatermarkEncoder
from PIL import Image

from conftest import encode, photo
from vestige.analysis.detect import make_input, run_detector
from vestige_metadata import MetadataDetector
from vestige_metadata.watermarks import KNOWN_MARKS, MAX_DECODED_PIXELS, chance_probability, threshold

SD_V1, SDXL = KNOWN_MARKS


def mark_sd_v1(image: Image.Image) -> Image.Image:
    """As Stable Diffusion v1's txt2img script does it."""
    encoder = WatermarkEncoder()
    encoder.set_watermark("bytes", b"StableDiffusionV1")
    marked = encoder.encode(cv2.cvtColor(np.array(image), cv2.COLOR_RGB2BGR), "dwtDct")
    return Image.fromarray(marked[:, :, ::-1])


def mark_sdxl(image: Image.Image) -> Image.Image:
    """As diffusers' SDXL watermarker does it: float RGB handed over as if it were BGR."""
    encoder = WatermarkEncoder()
    encoder.set_watermark("bits", list(SDXL.bits))
    marked = encoder.encode(np.array(image).astype(np.float32), "dwtDct")
    return Image.fromarray(np.clip(np.round(marked), 0, 255).astype(np.uint8))


def half(image: Image.Image) -> Image.Image:
    return image.resize((image.width // 2, image.height // 2), Image.Resampling.LANCZOS)


BASE = photo(31, 512)
SD_V1_IMAGE, SDXL_IMAGE = mark_sd_v1(BASE), mark_sdxl(BASE)
# file, bytes, mark expected present (None: none of them)
FIXTURES = [
    ("sd-v1-clean.png", encode(SD_V1_IMAGE, "PNG"), "stable-diffusion-v1"),
    ("sd-v1-jpeg80-444.jpg", encode(SD_V1_IMAGE, "JPEG", quality=80, subsampling=0), "stable-diffusion-v1"),
    ("sd-v1-jpeg80.jpg", encode(SD_V1_IMAGE, "JPEG", quality=80), None),
    ("sd-v1-half.png", encode(half(SD_V1_IMAGE), "PNG"), None),
    ("sdxl-clean.png", encode(SDXL_IMAGE, "PNG"), "stable-diffusion-xl"),
    ("sdxl-jpeg80-444.jpg", encode(SDXL_IMAGE, "JPEG", quality=80, subsampling=0), "stable-diffusion-xl"),
    ("sdxl-jpeg80.jpg", encode(SDXL_IMAGE, "JPEG", quality=80), None),
    ("sdxl-half.png", encode(half(SDXL_IMAGE), "PNG"), None),
    ("unmarked.png", encode(BASE, "PNG"), None),
]


def test_each_fixture_through_the_command_line(vestige, tmp_path):
    paths = []
    for name, data, _ in FIXTURES:
        (tmp_path / name).write_bytes(data)
        paths.append(tmp_path / name)
    result = vestige("detect", *paths, "--detector", "metadata", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {Path(r["file"]).name: r for r in map(json.loads, result.stdout.splitlines())}
    for name, _, expected in FIXTURES:
        row = rows[name]
        marks = {m["name"]: m for m in row["evidence"]["watermarks"]["marks"]}
        present = [n for n, m in marks.items() if m["present"]]
        assert present == ([expected] if expected else []), name
        assert (row["label"], row["source"]) == (("synthetic", expected) if expected else ("unknown", None)), name
        for mark in marks.values():
            assert mark["threshold"] == threshold(mark["bits"])
            assert mark["present"] is (mark["matching_bits"] >= mark["threshold"])


@pytest.mark.parametrize(("image", "mark", "order"), [(SD_V1_IMAGE, SD_V1, "bgr"), (SDXL_IMAGE, SDXL, "rgb")],
                         ids=["sd-v1", "sdxl"])
def test_matching_bits_of_a_clean_mark_are_reported(image, mark, order):
    finding = run_detector(MetadataDetector(trust_anchors=""), [make_input(encode(image, "PNG"), name="m.png")])[0]
    reading = next(m for m in finding.evidence["watermarks"]["marks"] if m["name"] == mark.name)
    assert reading["bits"] == len(mark.bits)
    assert reading["matching_bits"] >= reading["threshold"]
    assert reading["channel_order"] == order
    assert reading["chance_probability"] < 1e-6
    assert finding.evidence["signals"] == [
        f"{mark.name} watermark: {reading['matching_bits']}/{reading['bits']} bits match (threshold {reading['threshold']})"
    ]


def test_a_big_image_is_decoded_from_a_band_and_the_mark_still_found():
    big = mark_sd_v1(photo(32, 512).resize((1536, 768), Image.Resampling.BICUBIC))
    finding = run_detector(MetadataDetector(trust_anchors=""), [make_input(encode(big, "PNG"), name="big.png")])[0]
    watermarks = finding.evidence["watermarks"]
    first, last = watermarks["decoded_rows"]
    assert 0 < first and (last - first) * 1536 <= MAX_DECODED_PIXELS  # a band through the middle, not the whole
    assert finding.source == "stable-diffusion-v1"


@pytest.mark.parametrize(("bits", "threshold_bits"), [(48, 41), (136, 96)])
def test_thresholds_are_where_chance_falls_below_one_in_a_million(bits, threshold_bits):
    assert threshold(bits) == threshold_bits
    assert chance_probability(bits, threshold_bits) < 1e-6 <= chance_probability(bits, threshold_bits - 1)
    assert chance_probability(bits, 0) == 1.0


def test_small_images_are_not_checked():
    finding = run_detector(MetadataDetector(trust_anchors=""), [make_input(encode(photo(1), "PNG"), name="s.png")])[0]
    assert finding.evidence["watermarks"]["checked"] is False
    assert "marks" not in finding.evidence["watermarks"]


def test_decoding_does_not_import_torch(tmp_path):
    # imwatermark's package imports torch for another method; the detector loads only the dwtDct codec.
    image = tmp_path / "marked.png"
    image.write_bytes(encode(SD_V1_IMAGE, "PNG"))
    script = (
        "import sys\n"
        "from vestige.analysis.detect import make_input, run_detector\n"
        "from vestige_metadata import MetadataDetector\n"
        f"data = open({str(image)!r}, 'rb').read()\n"
        "finding = run_detector(MetadataDetector(trust_anchors=''), [make_input(data, name='m.png')])[0]\n"
        "print(finding.source, 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.split() == ["stable-diffusion-v1", "False"]
