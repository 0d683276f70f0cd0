"""The built-in metadata detector: generator metadata and the shape of the finding.

Content Credentials, watermarks and camera signs have files of their own
(``test_metadata_c2pa.py``, ``test_metadata_watermarks.py``, ``test_metadata_camera.py``).
"""

from __future__ import annotations

import io
import json

import pytest
from PIL import PngImagePlugin

from conftest import photo
from vestige.detect import make_input, run_detector
from vestige_metadata import MetadataDetector


def png_with_text(**chunks: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    buf = io.BytesIO()
    photo(1).save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def jpeg_with_exif(**tags: str) -> bytes:
    image = photo(2)
    exif = image.getexif()
    codes = {"Software": 0x0131, "Make": 0x010F, "Model": 0x0110}
    for name, value in tags.items():
        exif[codes[name]] = value
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def jpeg_with_xmp(source_type: str) -> bytes:
    xmp = (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="http://cv.iptc.org/newscodes/digitalsourcetype/{source_type}"/>'
        "</rdf:RDF></x:xmpmeta>"
    )
    buf = io.BytesIO()
    photo(3).save(buf, "JPEG", xmp=xmp.encode())
    return buf.getvalue()


CASES = [
    ("automatic1111", png_with_text(parameters="a cat\nSteps: 20, Sampler: Euler a, Model: sd15"), "synthetic", "automatic1111"),
    ("comfyui", png_with_text(prompt=json.dumps({"3": {"class_type": "KSampler"}})), "synthetic", "comfyui"),
    ("invokeai", png_with_text(invokeai_metadata="{}"), "synthetic", "invokeai"),
    ("novelai", png_with_text(Software="NovelAI", Comment='{"model": "nai-v3"}'), "synthetic", "novelai"),
    ("exif software", jpeg_with_exif(Software="Adobe Firefly"), "synthetic", "adobe-firefly"),
    ("iptc source type", jpeg_with_xmp("trainedAlgorithmicMedia"), "synthetic", None),
    ("camera exif", jpeg_with_exif(Make="Canon", Model="EOS R5"), "unknown", None),
    ("digital capture", jpeg_with_xmp("digitalCapture"), "unknown", None),
    ("plain png", png_with_text(), "unknown", None),
    ("ordinary text chunk", png_with_text(Comment="holiday"), "unknown", None),
]


@pytest.mark.parametrize(("what", "data", "label", "source"), CASES, ids=[c[0] for c in CASES])
def test_metadata_findings(what, data, label, source):
    finding = run_detector(MetadataDetector(trust_anchors=""), [make_input(data, name=what)])[0]
    assert finding.error is None
    assert finding.label == label
    assert finding.source == source
    assert finding.label != "real"


def test_evidence_names_what_was_found():
    detector = MetadataDetector(trust_anchors="")
    finding = run_detector(detector, [make_input(CASES[0][1], name="a1111")])[0]
    assert finding.evidence["generator_metadata"]["generator_model"] == "sd15"
    assert finding.evidence["signals"] == ["text chunk written by automatic1111"]
    camera = run_detector(detector, [make_input(CASES[6][1], name="camera")])[0]
    assert camera.evidence["camera"]["camera_make"] == "Canon"
    assert camera.evidence["camera"]["signs"] == ["camera EXIF Canon EOS R5"]
    xmp = run_detector(detector, [make_input(CASES[5][1], name="xmp")])[0]
    assert xmp.evidence["generator_metadata"]["digital_source_type"] == "trainedAlgorithmicMedia"


def test_evidence_stays_bounded():
    long_parameters = "a cat " * 5000 + "\nSteps: 20, Sampler: Euler a, Model: sd15"
    data = png_with_text(parameters=long_parameters, **{f"k{i}": "v" for i in range(50)})
    finding = run_detector(MetadataDetector(trust_anchors=""), [make_input(data, name="long")])[0]
    assert len(json.dumps(finding.to_dict())) < 8000
    assert len(finding.evidence["generator_metadata"]["text_chunks"]) == 20


def test_detect_is_deterministic_and_stores_nothing(vestige, tmp_path, config):
    path = tmp_path / "gen.png"
    path.write_bytes(CASES[0][1])
    first = vestige("detect", path, "--json")
    second = vestige("detect", path, "--json")
    assert first.exit_code == 0 and first.stdout == second.stdout
    row = json.loads(first.stdout)
    assert {"file", "detector", "detector_version", "model_sha256", "label", "source", "scores", "confidence",
            "evidence", "pictures"} <= set(row)
    assert not config.data_dir.exists()  # no workspace was touched


def test_detect_reports_an_unreadable_file_in_one_line(vestige, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 50)
    result = vestige("detect", bad)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.jpg" in result.stderr

