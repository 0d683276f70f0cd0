"""The built-in metadata detector: generator metadata, the shape of the finding, and its report section.

Content Credentials, watermarks and camera signs have files of their own
(``test_metadata_c2pa.py``, ``test_metadata_watermarks.py``, ``test_metadata_camera.py``).
"""

from __future__ import annotations

import dataclasses
import io
import json

import pytest
from PIL import PngImagePlugin

from analysedcase import REFERENCE, add_finished_analysis, make_evidence
from conftest import photo
from vestige.analysis.detect import make_input, run_detector
from vestige.core.plugins import get_plugin_manager
from vestige.core.workspace import Workspace
from vestige.evidence.cases import get_case
from vestige.plugin import Finding, ReportSection
from vestige.reports.casereport import build_case_report
from vestige.reports.jsonreport import report_problems
from vestige_metadata import MetadataDetector, vestige_report_sections


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
    first = vestige("detect", path, "--detector", "metadata", "--json")
    second = vestige("detect", path, "--detector", "metadata", "--json")
    assert first.exit_code == 0
    row, again = json.loads(first.stdout), json.loads(second.stdout)
    # Everything but the measured time per image is identical on a re-run.
    assert isinstance(row.pop("runtime_ms"), float) and isinstance(again.pop("runtime_ms"), float)
    assert row == again
    assert {"file", "detector", "detector_version", "model_sha256", "label", "source", "scores", "confidence",
            "evidence", "pictures", "device", "error"} <= set(row)
    assert not config.data_dir.exists()  # no workspace was touched


def test_detect_reports_an_unreadable_file_in_one_line(vestige, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 50)
    result = vestige("detect", bad)
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and "bad.jpg" in result.stderr


def verdict(label: str, source: str | None, evidence: dict, **fields) -> Finding:
    return Finding(detector=fields.pop("detector", "metadata"), detector_version="0.2.0", label=label, source=source,
                   evidence=evidence, **fields)


def test_report_section_summarises_the_metadata_verdicts():
    findings = run_detector(MetadataDetector(trust_anchors=""), [make_input(CASES[0][1], name="a.png"),
                                                                 make_input(CASES[6][1], name="b.jpg")])
    other = verdict("synthetic", "stylegan2", {}, detector="fingerprint")
    sections = vestige_report_sections(verdicts=[*findings, other])
    assert len(sections) == 1 and isinstance(sections[0], ReportSection)
    section = sections[0]
    assert section.title == "Provenance metadata"
    assert section.data["counts"] == {"synthetic": 1, "unknown": 1}
    rows = section.data["images"]
    assert [(r["label"], r["source"]) for r in rows] == [("synthetic", "automatic1111"), ("unknown", None)]
    assert rows[0]["signals"] == ["text chunk written by automatic1111"]
    assert rows[1]["camera"] == "Canon EOS R5"
    assert "1 synthetic, 1 unknown" in section.html and "stylegan2" not in section.html
    json.dumps(section.data)  # the canonical JSON report embeds it


def test_report_section_reads_stored_verdicts_and_escapes_what_files_say():
    stored = {"detector": "metadata", "image_id": 7, "label": "unknown", "source": None, "error": None,
              "evidence": {"signals": [], "why_unknown": "<script>alert(1)</script>",
                           "content_credentials": {"present": True, "validation_state": "Invalid",
                                                   "signer": {"common_name": "Evil & Co"}}}}
    section = vestige_report_sections(verdicts=[stored])[0]
    assert section.data["images"][0]["image"] == 7 and section.data["images"][0]["c2pa"] == "Invalid"
    assert "<script>" not in section.html and "&lt;script&gt;" in section.html and "Evil &amp; Co" in section.html


@pytest.mark.parametrize("verdicts", [[], [verdict("synthetic", "x", {}, detector="fingerprint")], "not verdicts"],
                         ids=["none", "other detectors only", "not a list of verdicts"])
def test_no_metadata_verdicts_no_section(verdicts):
    assert vestige_report_sections(verdicts=verdicts) == []


def test_the_section_appears_in_a_case_report(vestige, make_photo, config):
    make_evidence(vestige, make_photo)
    workspace = Workspace.open(config)
    try:
        add_finished_analysis(workspace)
        with workspace.db.session() as session:
            document = build_case_report(session, get_case(session, REFERENCE), config=config,
                                         pm=get_plugin_manager(), actor="tester")
    finally:
        workspace.close()
    sections = [s for s in document["sections"] if s["plugin"] == "metadata"]
    assert [(s["title"], s["error"]) for s in sections] == [("Provenance metadata", None)]
    assert sections[0]["data"]["counts"] == {"synthetic": 2, "unknown": 1}
    assert report_problems(document) == []


def test_one_odd_file_does_not_cost_its_batch_their_findings():
    good = make_input(CASES[0][1], name="good.png")
    odd = dataclasses.replace(make_input(CASES[1][1], name="odd.png"), data=b"not an image any more")
    findings = run_detector(MetadataDetector(trust_anchors=""), [good, odd, good])
    assert [f.label for f in findings] == ["synthetic", "unknown", "synthetic"]
    assert findings[0].error is None and findings[1].error.startswith("UnidentifiedImageError")
