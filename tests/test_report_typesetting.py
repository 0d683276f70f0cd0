"""Reports typeset for people (issue 24): no raw JSON or cut text in the body, bar labels whole, tables inside
the A4 page, the PDF dated by the report's own time (and still reproducible), detector versions as they ran."""

from __future__ import annotations

import re
import subprocess

import pytest
import sqlalchemy as sa
from analysedcase import REFERENCE, add_finished_analysis, make_evidence
from test_reports import export, needs_poppler

from vestige.core.plugins import get_plugin_manager
from vestige.core.workspace import Workspace
from vestige.db.models import Verdict
from vestige.evidence.cases import get_case
from vestige.reports.export import build_checked_report
from vestige.reports.pdf import render_pdf
from vestige.reports.pictures import ReportPictures

LONG_SCORE = "pixelshuffle-wgangp-long-generator-name"
NESTED = {"domain": {"in_domain": False, "reason": "outside the validated domain: a 96×96 image"},
          "watermarks": {"marks": [{"name": "stable-diffusion-v1", "bits": 136}], "checked": True},
          "residual_energy": 0.25}


@pytest.fixture
def typeset(vestige, make_photo, config):
    make_evidence(vestige, make_photo)
    workspace = Workspace.open(config)
    add_finished_analysis(workspace)
    with workspace.db.session() as session:
        verdict = session.execute(sa.select(Verdict).where(Verdict.detector == "cls-a").order_by(Verdict.id)).scalars().first()
        verdict.scores = {**verdict.scores, LONG_SCORE: 0.5}
        verdict.evidence = NESTED
    yield workspace
    workspace.close()


def body_and_appendix(text: str) -> tuple[str, str]:
    body, _, appendix = text.partition("Appendix: plugin data")
    return body, appendix


@needs_poppler
def test_pdf_body_is_for_people_and_fits_the_page(vestige, typeset, tmp_path):
    out, _ = export(vestige, tmp_path, "pdf")
    text = subprocess.run(["pdftotext", "-layout", str(out), "-"], check=True, capture_output=True, text=True).stdout
    body, appendix = body_and_appendix(text)
    assert appendix, "the appendix is missing"
    assert "…" not in body and '{"' not in body and '":' not in body
    joined = re.sub(r"\s+", "", body)  # a table cell may wrap a long word over lines
    assert LONG_SCORE in joined  # the bar label, whole
    assert "domain.in_domain:no" in joined and "watermarks.marks[1].name:stable-diffusion-v1" in joined
    assert "ab" * 32 in joined  # the model's SHA-256, whole
    assert "detectors (as they" in body and "cls-a 1.0.0, metadata 1.0.0" in body and "plugin packages" in body

    # Every word lies inside the page, right margin included.
    boxes = subprocess.run(["pdftotext", "-bbox", str(out), "-"], check=True, capture_output=True, text=True).stdout
    width = float(re.search(r'<page width="([\d.]+)"', boxes).group(1))
    rights = [float(x) for x in re.findall(r'xMax="([\d.]+)"', boxes)]
    assert rights and max(rights) <= width - 30, f"a word reaches x={max(rights):.0f} on a {width:.0f} pt page"


@needs_poppler
def test_pdf_is_dated_by_the_report_and_reproducible(typeset):
    pm = get_plugin_manager(())
    with typeset.db.session() as session:
        document = build_checked_report(session, get_case(session, REFERENCE), workspace=typeset, pm=pm, actor="tester")
        pictures = ReportPictures(typeset.store, document)
    first, second = render_pdf(document, pictures), render_pdf(document, pictures)
    assert first == second  # the same document gives the same bytes
    stamp = document["generated_at"]  # 2026-05-01T09:30:00Z
    expected = "D:" + re.sub(r"[-T:Z]", "", stamp) + "+00'00'"
    assert f"/CreationDate ({expected})".encode() in first and f"/ModDate ({expected})".encode() in first
    assert b"D:20000101" not in first
    later = render_pdf({**document, "generated_at": "2031-02-03T04:05:06Z"}, pictures)
    assert b"/CreationDate (D:20310203040506+00'00')" in later


def test_html_body_has_no_raw_json_and_no_cut_text(vestige, typeset, tmp_path):
    out, _ = export(vestige, tmp_path, "html")
    page = out.read_text()
    body, _ = body_and_appendix(page)
    visible = re.sub(r"<(style|svg)[^>]*>.*?</\1>", "", body, flags=re.S)
    visible = re.sub(r"<[^>]+>", "", visible)
    assert "…" not in visible and '{"' not in visible
    assert "domain.in_domain: no" in visible and "ab" * 32 in visible
    assert f">{LONG_SCORE}</text>" in page  # the SVG label, whole
    assert "table-layout: fixed" in page and "max-width: 100%" in page  # side-by-side tables fit the 1100 px body
