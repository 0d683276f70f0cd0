"""Case reports: canonical JSON against its schema, HTML, and a PDF rendered to pictures and read back."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess

import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image as PILImage

from analysedcase import REFERENCE, add_finished_analysis, make_evidence
from vestige.core.plugins import get_plugin_manager, register_plugin
from vestige.core.workspace import Workspace
from vestige.db.models import Report
from vestige.evidence.cases import get_case
from vestige.evidence.custody import verify_chain
from vestige.plugin import ReportSection
from vestige.reports.casereport import build_case_report
from vestige.reports.jsonreport import report_json_bytes, report_problems
from vestige.reports.presentation import EMPTY

needs_poppler = pytest.mark.skipif(shutil.which("pdftoppm") is None or shutil.which("pdftotext") is None,
                                   reason="poppler-utils (pdftoppm, pdftotext) is not installed; .ci/run installs it")


@pytest.fixture
def analysed(vestige, make_photo, config):
    make_evidence(vestige, make_photo)
    workspace = Workspace.open(config)
    ids = add_finished_analysis(workspace)
    yield workspace, ids
    workspace.close()


def export(vestige, tmp_path, fmt, name=None):
    out = tmp_path / "out" / (name or f"report.{fmt}")
    result = vestige("report", REFERENCE, "--format", fmt, "--out", out)
    assert result.exit_code == 0, result.stderr
    return out, result


def test_json_report_is_canonical_valid_and_complete(vestige, analysed, tmp_path):
    workspace, ids = analysed
    out, _ = export(vestige, tmp_path, "json")
    data = out.read_bytes()
    document = json.loads(data)
    assert report_problems(document) == []
    assert data == report_json_bytes(document)  # sorted keys, no whitespace: re-serialising changes nothing
    assert document["format"] == "vestige-case-report" and document["version"] == 1
    assert document["summary"]["outcomes"] == {"agree": 1, "conflict": 1, "single": 1}
    by_name = {image["filename"].rsplit("/", 1)[-1]: image for image in document["images"]}
    first = by_name["astronaut.jpg"]
    assert [f["detector"] for f in first["findings"]] == ["cls-a", "metadata"]
    assert first["findings"][0]["evidence"] == {"residual_energy": 0.123457}  # rounded to FLOAT_DIGITS
    assert first["merged"]["outcome"] == "agree"
    assert by_name["coffee.png"]["merged"]["outcome"] == "conflict"
    assert first["robustness"]["probes"] == {"jpeg-75": 990, "resize-0.5": 991}
    assert [n["id"] for n in first["near_duplicates"]] == [ids["astronaut-reshared.jpg"]]
    assert document["custody"]["intact"] and document["custody"]["log"][0]["action"] == "case.opened"
    assert document["reproducibility"]["models"] == [
        {"detector": "cls-a", "detector_version": "1.0.0", "sha256": "ab" * 32, "filename": None, "under_trained": None}
    ]  # an artifact not in the registry: nothing is known of how its training ended
    assert document["reproducibility"]["configuration"]["store"]["backend"] == "local"


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d.pop("custody"), "(top level)"),
        (lambda d: d.__setitem__("version", 2), "version"),
        (lambda d: d["images"][0]["findings"][0].__setitem__("label", "fake"), "images/0/findings/0/label"),
        (lambda d: d["images"][0].__setitem__("sha256", "not-a-hash"), "images/0/sha256"),
        (lambda d: d["images"][0]["merged"].__setitem__("outcome", "maybe"), "images/0/merged"),
    ],
)
def test_the_schema_rejects_what_a_report_must_not_be(analysed, config, mutate, where):
    workspace, _ = analysed
    with workspace.db.session() as session:
        document = build_case_report(session, get_case(session, REFERENCE), config=config,
                                     pm=get_plugin_manager(), actor="tester")
    broken = copy.deepcopy(document)
    mutate(broken)
    problems = report_problems(broken)
    assert problems and any(p.startswith(where) for p in problems)


def test_every_export_is_a_blob_a_report_row_and_a_custody_event(vestige, analysed, tmp_path):
    workspace, _ = analysed
    out, result = export(vestige, tmp_path, "html")
    with workspace.db.session() as session:
        case = get_case(session, REFERENCE)
        report = session.execute(sa.select(Report)).scalar_one()
        assert (report.format, report.size, report.created_by) == ("html", out.stat().st_size, "tester")
        assert workspace.store.get(report.blob_sha256) == out.read_bytes()
        assert report.blob_sha256 in result.stdout
        events = [e for e in session.execute(sa.text("SELECT action, details FROM custody_events ORDER BY seq"))]
        assert events[-1][0] == "report.exported"
        assert json.loads(events[-1][1])["sha256"] == report.blob_sha256
        assert verify_chain(session, case).intact


def test_html_report_shows_every_section_and_inlines_its_pictures(vestige, analysed, tmp_path):
    out, _ = export(vestige, tmp_path, "html")
    page = out.read_text()
    for heading in ("Summary", "Merged verdict", "Detectors side by side", "Pictures", "Robustness",
                    "Perturbation history", "Near-duplicates", "Custody log", "Methods and limitations",
                    "Reproducibility", "Plugin sections"):
        assert f">{heading}<" in page, heading
    # A JPEG thumbnail per image; the fingerprint PNG under each of the three cls-a findings.
    assert page.count("data:image/jpeg;base64,") == 3 and page.count("data:image/png;base64,") == 3
    assert "<svg" in page and "gan-3" in page and "CONTRADICTS" in page
    assert "Chain verified when this report was made" in page
    assert "<script" not in page


def test_empty_sections_say_so(vestige, make_photo, tmp_path):
    assert vestige("init").exit_code == 0
    assert vestige("case", "new", "--ref", "EMPTY-1", "--title", "Nothing yet").exit_code == 0
    out = tmp_path / "empty.html"
    assert vestige("report", "EMPTY-1", "--format", "html", "--out", out).exit_code == 0
    page = out.read_text()
    for key in ("analysis", "images", "detectors", "models"):
        assert EMPTY[key] in page, key


def test_a_plugin_section_appears_and_a_failing_plugin_is_isolated(analysed, config):
    workspace, _ = analysed

    class Good:
        @staticmethod
        def vestige_report_sections(case, verdicts):
            return [ReportSection(title="Lab notes", html="<p>checked by hand</p>", data={"verdicts": len(verdicts)})]

    class Broken:
        @staticmethod
        def vestige_report_sections(case):
            raise RuntimeError("no notes today")

    from vestige.plugin.hookspecs import hookimpl

    pm = get_plugin_manager()
    for name, cls in (("good", Good), ("broken", Broken)):
        cls.vestige_report_sections = hookimpl(cls.vestige_report_sections)
        register_plugin(pm, cls, name=name)
    with workspace.db.session() as session:
        document = build_case_report(session, get_case(session, REFERENCE), config=config, pm=pm, actor="tester")
    sections = {s["plugin"]: s for s in document["sections"]}
    assert sections["good"]["title"] == "Lab notes" and sections["good"]["data"] == {"verdicts": 6}
    assert "RuntimeError: no notes today" in sections["broken"]["error"]
    assert report_problems(document) == []


def test_a_missing_case_and_a_bundle_without_a_key_are_one_line_errors(vestige, analysed, tmp_path):
    missing = vestige("report", "NOPE-1", "--format", "json", "--out", tmp_path / "x.json")
    assert missing.exit_code == 1 and "no case 'NOPE-1'" in missing.stderr
    nokey = vestige("report", REFERENCE, "--format", "bundle", "--out", tmp_path / "b.zip")
    assert nokey.exit_code == 1 and "vestige keys init" in nokey.stderr
    assert len(nokey.stderr.strip().splitlines()) == 1 and not (tmp_path / "b.zip").exists()


@needs_poppler
def test_pdf_renders_to_legible_pages(vestige, analysed, tmp_path):
    out, _ = export(vestige, tmp_path, "pdf")
    assert out.read_bytes().startswith(b"%PDF-")
    subprocess.run(["pdftoppm", "-r", "50", "-png", str(out), str(tmp_path / "page")], check=True, timeout=60)
    pages = sorted(tmp_path.glob("page-*.png"))
    # A summary page, one page (at least) per image, then custody, methods and reproducibility.
    assert len(pages) >= 5
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], check=True, capture_output=True, text=True,
                          timeout=60).stdout
    page_texts = text.split("\f")[: len(pages)]
    for page, page_text in zip(pages, page_texts):
        pixels = np.asarray(PILImage.open(page).convert("L"))
        assert (pixels < 128).mean() > 0.0005, f"{page.name} is blank"
        body = [line for line in page_text.splitlines() if line.strip() and "Vestige evidence report" not in line]
        assert body, f"{page.name} holds nothing but its footer"
    for expected in ("Case LAB-2026-0042: Forum post images", "Merged verdict", "Detectors side by side", "Robustness",
                     "Near-duplicates", "Custody log", "Chain verified", "Reproducibility", "Limitations",
                     "Plugin sections", "ab" * 32, "CONTRADICTS"):
        assert expected in text, expected


def test_robustness_probes_are_listed_as_derivatives_not_as_near_duplicates(analysed, config):
    workspace, ids = analysed
    from conftest import encode, photo

    from vestige.db.models import Perturbation
    from vestige.evidence.imagefile import inspect_image
    from vestige.evidence.ingest import Acquisition, Ingester

    with workspace.db.session() as session:
        case = get_case(session, REFERENCE)
        data = encode(photo(1, 96), "JPEG", quality=75)  # what a JPEG-75 probe of astronaut.jpg looks like
        ingester = Ingester(workspace, session, case, Acquisition(source="robustness probe jpeg-75", actor="tester"))
        probe = ingester.add_image(data, inspect_image(data, name="astronaut.jpeg-75.jpg"), filename="astronaut.jpeg-75.jpg",
                                   origin="derived")
        session.add(Perturbation(image_id=probe.id, parent_id=ids["astronaut.jpg"], basis="applied",
                                 operations=[{"op": "jpeg", "params": {"quality": 75}}]))
        session.flush()
        probe_id = probe.id
    with workspace.db.session() as session:
        document = build_case_report(session, get_case(session, REFERENCE), config=config, pm=get_plugin_manager(),
                                     actor="tester")
    assert probe_id not in [image["id"] for image in document["images"]]
    first = next(image for image in document["images"] if image["id"] == ids["astronaut.jpg"])
    assert [n["id"] for n in first["near_duplicates"]] == [ids["astronaut-reshared.jpg"]]
    assert [(d["basis"], d["image"]["id"]) for d in first["perturbations"]["derivatives"]] == [
        ("observed", ids["astronaut-reshared.jpg"]), ("applied", probe_id)]


def test_the_same_case_gives_the_same_report_bytes(analysed, config):
    """Re-running a report reproduces it: same document (but its time), and each format renders byte for byte."""
    from vestige.reports.export import render
    from vestige.reports.pictures import ReportPictures

    workspace, _ = analysed
    documents = []
    for _ in range(2):
        with workspace.db.session() as session:
            documents.append(build_case_report(session, get_case(session, REFERENCE), config=config,
                                               pm=get_plugin_manager(), actor="tester"))
    first, second = ({k: v for k, v in d.items() if k != "generated_at"} for d in documents)
    assert first == second
    pictures = ReportPictures(workspace.store, documents[0])
    for fmt in ("json", "html", "pdf"):
        assert render(fmt, documents[0], pictures) == render(fmt, documents[0], pictures), fmt
