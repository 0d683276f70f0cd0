"""Working a case from the pages and the API: launching an analysis, reading its verdicts, exporting reports."""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from test_web import Browser, app, browser, client, custody_actions, lab  # noqa: F401  (shared fixtures)
from test_web_api import bearer

from vestige.db.models import Analysis, Report
from vestige.jobs.dispatch import wait_for_analysis


def finished(workspace, analysis_id: int) -> Analysis:
    analysis = wait_for_analysis(workspace, analysis_id, poll_s=0.1, timeout_s=60)
    assert analysis.finished_at is not None, "the analysis did not finish within 60 s"
    return analysis


def test_launch_an_analysis_from_the_case_page_and_read_its_verdicts(browser, lab, workspace):
    b = browser("alice")
    page = b.get("/cases/CASE-A").text
    assert 'name="detectors" value="metadata"' in page
    response = b.post("/cases/CASE-A/analyses", {"detectors": "metadata"})
    assert response.status_code == 302 and response.headers["Location"] == "/cases/CASE-A#analyses"
    with workspace.db.session() as session:
        analysis_id = session.execute(sa.select(sa.func.max(Analysis.id))).scalar_one()
    analysis = finished(workspace, analysis_id)
    assert analysis.status == "done" and analysis.progress_done == analysis.progress_total == 2
    progress = b.get("/cases/CASE-A/analyses.json").json["analyses"][0]
    assert progress["status"] == "done" and progress["detectors"] == ["metadata"]
    image_page = b.get(f"/images/{lab.images['CASE-A'][0]}").text
    assert "<strong>metadata</strong>" in image_page and "No findings yet" not in image_page
    actions = [a for _, a in custody_actions(workspace, "CASE-A")]
    assert "analysis.requested" in actions and "analysis.completed" in actions


def test_only_examiners_launch_and_an_empty_case_cannot_be_analysed(browser, client, lab):
    assert browser("vera").post("/cases/CASE-A/analyses", {"detectors": "metadata"}).status_code == 403
    assert 'name="detectors"' not in browser("vera").get("/cases/CASE-A").text
    created = client.post("/api/v1/cases", json={"reference": "EMPTY-1", "title": "Nothing yet"}, headers=bearer(lab, "bob"))
    assert created.status_code == 201
    empty = client.post("/api/v1/cases/EMPTY-1/analyses", json={}, headers=bearer(lab, "bob"))
    assert empty.status_code == 409 and "no evidence images" in empty.json["error"]
    unknown = client.post("/api/v1/cases/CASE-A/analyses", json={"detectors": ["nope"]}, headers=bearer(lab, "alice"))
    assert unknown.status_code == 400 and "no detector named 'nope'" in unknown.json["error"]


def test_analysis_verdicts_and_a_report_through_the_api(client, lab, workspace):
    launched = client.post("/api/v1/cases/CASE-A/analyses", json={"detectors": ["metadata"]}, headers=bearer(lab, "alice"))
    assert launched.status_code == 202 and launched.json["runs_in"] == "web process"
    finished(workspace, launched.json["analysis"]["id"])
    verdicts = client.get("/api/v1/cases/CASE-A/verdicts", headers=bearer(lab, "vera")).json["verdicts"]
    assert {v["image_id"] for v in verdicts} == set(lab.images["CASE-A"])
    made = client.post("/api/v1/cases/CASE-A/reports", json={"format": "json"}, headers=bearer(lab, "alice"))
    assert made.status_code == 201 and made.json["report"]["format"] == "json"
    report = made.json["report"]
    listed = client.get("/api/v1/cases/CASE-A/reports", headers=bearer(lab, "vera")).json["reports"]
    assert [r["id"] for r in listed] == [report["id"]]
    download = client.get(f"/api/v1/reports/{report['id']}", headers=bearer(lab, "vera"))
    assert hashlib.sha256(download.data).hexdigest() == report["sha256"]
    assert json.loads(download.data)["case"]["reference"] == "CASE-A"
    assert client.get(f"/api/v1/reports/{report['id']}", headers=bearer(lab, "bob")).status_code == 404
    actions = custody_actions(workspace, "CASE-A")
    assert ("alice", "report.exported") in actions and ("vera", "report.downloaded") in actions


def test_make_and_download_a_report_from_the_case_page(browser, lab, workspace):
    b = browser("alice")
    response = b.post("/cases/CASE-A/reports", {"format": "json"})
    assert response.status_code == 302 and response.headers["Location"] == "/cases/CASE-A#reports"
    with workspace.db.session() as session:
        report = session.execute(sa.select(Report)).scalar_one()
    page = b.get("/cases/CASE-A").text
    assert f'href="/reports/{report.id}/download"' in page
    download = browser("vera").get(f"/reports/{report.id}/download")
    assert download.status_code == 200 and download.mimetype == "application/json"
    assert download.headers["Content-Disposition"] == f"attachment; filename=CASE-A-report-{report.id}.json"
    assert download.headers["Content-Security-Policy"].endswith("sandbox")
    assert browser("bob").get(f"/reports/{report.id}/download").status_code == 404
    assert browser("vera").post("/cases/CASE-A/reports", {"format": "json"}).status_code == 403
    bad = browser("alice").post("/cases/CASE-A/reports", {"format": "docx"})
    assert bad.status_code == 422 and "unknown report format" in bad.text
