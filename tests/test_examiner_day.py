"""The examiner's day (issue 24): the analysis form's defaults, progress and stalled queues, evidence kept apart
from the lab's copies, confidences on one scale, robustness by conclusion, the custody actor and page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from test_web import Browser, app, browser, client, custody_actions, lab  # noqa: F401  (shared fixtures)
from test_web_api import bearer
from test_web_work import finished

from vestige.analysis.analyses import request_analysis
from vestige.analysis.robustness import change_of
from vestige.analysis.verdicts import stated_confidence
from vestige.core.plugins import get_plugin_manager, select_detectors
from vestige.db.models import Analysis, AnalysisTask, Case, Image, WorkerHeartbeat, utcnow
from vestige.evidence.cases import get_case
from vestige.jobs.dispatch import run_in_process


def checked_detectors(page: str) -> list[str]:
    return re.findall(r'name="detectors" value="([^"]+)" checked', page)


def test_the_form_checks_only_quick_detectors_that_can_run_and_its_defaults_give_verdicts(browser, lab, workspace):
    b = browser("alice")
    page = b.get("/cases/CASE-A").text
    checked = checked_detectors(page)
    assert "metadata" in checked and "inversion" not in checked
    # Trainable detectors without a model in this workspace are shown, disabled, with the reason.
    for name in ("dct", "knn", "prnu", "eigenface"):
        assert f'value="{name}" disabled' in page and f"detector {name} has no trained model" in page
        assert name not in checked
    inversion = page.split('data-detector="inversion"')[1].split("</label>")[0]
    assert "slow: about 2 min for the 2 images" in inversion and "with robustness copies" in inversion
    response = b.post("/cases/CASE-A/analyses", {"detectors": checked})
    assert response.status_code == 302
    with workspace.db.session() as session:
        analysis_id = session.execute(sa.select(sa.func.max(Analysis.id))).scalar_one()
    analysis = finished(workspace, analysis_id)
    assert analysis.status == "done" and analysis.error is None and sorted(analysis.detectors) == sorted(checked)
    with workspace.db.session() as session:
        errors = session.execute(sa.text("SELECT detector, error FROM verdicts WHERE error IS NOT NULL")).all()
    assert errors == []


@pytest.mark.parametrize("form, message", [
    ({}, "Choose at least one detector to run."),
    ({"detectors": "dct"}, "detector dct has no trained model"),
])
def test_a_launch_the_form_cannot_run_is_said_on_the_case_page(browser, lab, form, message):
    b = browser("alice")
    response = b.post("/cases/CASE-A/analyses", form)
    assert response.status_code == 302 and response.headers["Location"] == "/cases/CASE-A#analyses"
    assert message in b.get("/cases/CASE-A").text


def queue_analysis(workspace, detectors: list[str], reference: str = "CASE-A", robustness: bool = False) -> int:
    pm = get_plugin_manager(())
    with workspace.db.session() as session:
        analysis = request_analysis(workspace, session, get_case(session, reference), select_detectors(pm, detectors),
                                    pm=pm, actor="tester", robustness=robustness)
        return analysis.id


def test_a_queued_analysis_without_a_worker_says_so_with_progress_per_detector(browser, lab, workspace):
    analysis_id = queue_analysis(workspace, ["metadata", "fingerprint"])
    b = browser("alice")
    row = b.get("/cases/CASE-A/analyses.json").json["analyses"][0]
    assert row["id"] == analysis_id and row["status"] == "queued"
    assert "No worker is running" in row["waiting"] and "`vestige worker`" in row["waiting"]
    assert [(d["detector"], d["done"], d["total"], d["status"]) for d in row["by_detector"]] == [
        ("metadata", 0, 2, "queued"), ("fingerprint", 0, 2, "queued")]
    page = b.get("/cases/CASE-A").text
    assert "No worker is running, so analysis" in page and "metadata: 0/2 queued" in page

    # A live worker that serves only the gpu queue does not help the cpu tasks.
    with workspace.db.session() as session:
        session.add(WorkerHeartbeat(nodename="gpu-host", pid=1, queues=["gpu"], beat_at=utcnow()))
    waiting = b.get("/cases/CASE-A/analyses.json").json["analyses"][0]["waiting"]
    assert "No live worker serves queue cpu" in waiting and "--queues cpu" in waiting
    with workspace.db.session() as session:
        session.get(WorkerHeartbeat, "gpu-host").queues = ["gpu", "cpu"]
    assert b.get("/cases/CASE-A/analyses.json").json["analyses"][0]["waiting"] is None

    # Once one detector has findings, its pace gives the time left of the other images.
    with workspace.db.session() as session:
        metadata_task = session.execute(sa.select(AnalysisTask.id).where(
            AnalysisTask.analysis_id == analysis_id, AnalysisTask.detector == "metadata")).scalar_one()
    from vestige.jobs.execution import run_analysis_task
    from vestige.jobs.worker_process import ProcessState

    run_analysis_task(workspace, metadata_task, detectors=ProcessState(workspace.config, workspace=workspace).detector,
                      worker="in-process")
    row = b.get("/cases/CASE-A/analyses.json").json["analyses"][0]
    metadata, fingerprint = row["by_detector"]
    assert (metadata["done"], metadata["status"], metadata["seconds_left"]) == (2, "done", None)
    assert (fingerprint["done"], fingerprint["status"]) == (0, "queued")
    assert row["waiting"] is None  # a command runs it itself


def test_the_inversion_verifier_is_sent_to_a_gpu_worker_when_one_is_live_and_to_the_cpu_otherwise(lab, workspace):
    def queues(analysis_id: int) -> set[str]:
        with workspace.db.session() as session:
            return set(session.execute(sa.select(AnalysisTask.queue).where(
                AnalysisTask.analysis_id == analysis_id, AnalysisTask.detector == "inversion")).scalars())

    with workspace.db.session() as session:
        session.add(WorkerHeartbeat(nodename="cpu-host", pid=1, queues=["cpu"], beat_at=utcnow()))
    assert queues(queue_analysis(workspace, ["inversion"])) == {"cpu"}
    with workspace.db.session() as session:
        session.add(WorkerHeartbeat(nodename="gpu-host", pid=2, queues=["gpu"], beat_at=utcnow()))
    assert queues(queue_analysis(workspace, ["inversion"])) == {"gpu"}


def test_verdicts_names_a_newer_unfinished_analysis_instead_of_hiding_it(vestige, lab, workspace):
    first = queue_analysis(workspace, ["metadata"])
    run_in_process(workspace, first)
    second = queue_analysis(workspace, ["metadata"])
    result = vestige("verdicts", "CASE-A")
    assert result.exit_code == 0
    assert f"analysis {second}, the newest, is queued (0/2 verdicts): No worker is running" in result.stderr
    assert f"showing analysis {first}, the latest finished" in result.stderr
    assert f"analysis {first} of " in result.stdout and "done" in result.stdout


def test_lab_made_copies_are_not_evidence(browser, client, lab, workspace):
    analysis_id = queue_analysis(workspace, ["metadata"], robustness=True)
    run_in_process(workspace, analysis_id)
    b = browser("alice")
    page = b.get("/cases/CASE-A").text
    assert '<h2>Evidence <span class="count">2</span>' in page and "14 lab-made copies" in page
    gallery = page.split('<ul class="gallery">')[1].split("</ul>\n  {% else %}")[0]
    assert gallery.count('<span class="verdict">') == 2 and gallery.count("7 lab-made copies") == 2
    # The copies resemble their originals by design: no near-duplicate counts from them.
    assert "near-dup." not in gallery
    api = client.get("/api/v1/cases/CASE-A/images", headers=bearer(lab, "alice")).json["images"]
    assert len(api) == 2 and all(len(row["copies"]) == 7 and row["near_duplicates"] == 0 for row in api)
    assert {c["operations"][0]["op"] for c in api[0]["copies"]} == {"jpeg", "resize", "crop", "blur"}
    cases = client.get("/api/v1/cases", headers=bearer(lab, "alice")).json["cases"]
    assert next(c for c in cases if c["reference"] == "CASE-A")["images"] == 2
    assert client.get("/api/v1/cases/CASE-A", headers=bearer(lab, "alice")).json["case"]["images"] == 2
    verdicts = client.get("/api/v1/cases/CASE-A/verdicts", headers=bearer(lab, "alice")).json["verdicts"]
    assert sorted(v["image_id"] for v in verdicts) == sorted(lab.images["CASE-A"])
    record = client.get(f"/api/v1/images/{api[0]['id']}", headers=bearer(lab, "alice")).json["image"]
    assert len(record["robustness"]["probes"]) == 7 and record["robustness"]["merged"]  # this image's entry only
    copy_id = api[0]["copies"][0]["id"]
    copy_page = b.get(f"/images/{copy_id}").text
    assert f"A copy the lab made from <a href=\"/images/{api[0]['id']}\">image {api[0]['id']}</a>" in copy_page


@pytest.mark.parametrize("original, perturbed, change", [
    ({"label": "synthetic", "source": "gan"}, {"label": "synthetic", "source": "gan"}, "holds"),
    ({"label": "real"}, {"label": "real"}, "holds"),
    ({"label": "unknown"}, {"label": "unknown"}, "holds"),
    # only the outcome's wording differs: the conclusion is the same
    ({"label": "synthetic", "source": None, "outcome": "agree"}, {"label": "synthetic", "source": None,
                                                                    "outcome": "single"}, "holds"),
    ({"label": "synthetic", "source": "gan"}, {"label": "unknown"}, "weakens"),
    ({"label": "synthetic", "source": "gan"}, {"label": "synthetic", "source": None}, "weakens"),
    ({"label": "real"}, {"label": "unknown"}, "weakens"),
    ({"label": "synthetic", "source": "gan"}, {"label": "real"}, "contradicts"),
    ({"label": "synthetic", "source": "gan"}, {"label": "synthetic", "source": "other"}, "contradicts"),
    ({"label": "unknown"}, {"label": "real"}, "contradicts"),
    ({"label": "real"}, {"label": "real", "error": "boom"}, None),
    ({"label": "real"}, None, None),
])
def test_robustness_compares_conclusions(original, perturbed, change):
    assert change_of(original, perturbed) == change


@pytest.mark.parametrize("finding, stated", [
    ({"label": "synthetic", "source": "gan", "confidence": 0.93}, 0.93),
    ({"label": "synthetic", "source": None, "confidence": 0.8}, 0.8),
    ({"label": "real", "confidence": 0.7}, 0.7),
    ({"label": "unknown", "confidence": 0.96}, None),  # a rejected top candidate, not the outcome's confidence
    ({"label": "real", "confidence": 0.9, "error": "boom"}, None),
    ({"label": "synthetic", "source": "gan", "confidence": None}, None),
])
def test_a_finding_shows_its_confidence_in_the_outcome_it_states(finding, stated):
    assert stated_confidence(finding) == stated


def test_custody_names_who_acts_never_the_os_user(vestige, workspace, env, tmp_path, monkeypatch):
    del env["VESTIGE_ACTOR"]
    refused = vestige("case", "new", "--ref", "ACT-1", "--title", "t")
    assert refused.exit_code == 1 and "who is acting? Give --by NAME or set VESTIGE_ACTOR" in refused.stderr
    assert vestige("case", "new", "--ref", "ACT-1", "--title", "t", "--by", "A. Examiner").exit_code == 0
    env["VESTIGE_VESTIGE__DEFAULT_ACTOR"] = "nightly job"
    assert vestige("case", "close", "ACT-1").exit_code == 0
    with workspace.db.session() as session:
        actors = [e.actor for e in session.execute(sa.text("SELECT actor FROM custody_events ORDER BY id")).all()]
    assert actors == ["A. Examiner", "nightly job"]


def test_the_custody_page_pages_and_filters(browser, lab, workspace):
    from vestige.evidence.custody import record_event

    with workspace.db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == "CASE-A")).scalar_one()
        for i in range(150):
            record_event(session, case, actor="clerk" if i % 3 else "lead", action="note", details={"n": i})
    b = browser("alice")
    first = b.get("/cases/CASE-A/custody").text
    assert first.count('<td class="num">') == 100 and "page 1 of 2" in first and "older →" in first
    second = b.get("/cases/CASE-A/custody?page=2").text
    assert "← newer" in second and "The hash chain is intact" in second
    leads = b.get("/cases/CASE-A/custody?action=note&actor=lead").text
    assert leads.count('<td class="num">') == 50 and "50 of" in leads


def test_a_missing_database_is_an_error_without_side_effects(tmp_path, monkeypatch):
    import subprocess
    import sys

    (tmp_path / "var").mkdir()
    environment = {k: v for k, v in __import__("os").environ.items() if not k.startswith("VESTIGE_")}
    environment["VESTIGE_CONFIG"] = str(Path(__file__).resolve().parents[1] / "config.toml")
    result = subprocess.run([sys.executable, "-c", "from vestige.cli import main; main()", "images", "X"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True)
    assert result.returncode == 1 and "there is no Vestige database at" in result.stderr
    assert "VESTIGE_DATA_DIR is not set" in result.stderr and "Traceback" not in result.stderr
    assert list((tmp_path / "var").iterdir()) == []


def test_make_report_without_an_analysis_says_so(browser, lab):
    b = browser("alice")
    assert "No analysis yet: a report now lists the evidence and custody only" in b.get("/cases/CASE-A").text
    b.post("/cases/CASE-A/reports", {"format": "json"})
    assert "has no analysis yet: the report lists the evidence and its custody" in b.get("/cases/CASE-A").text


def test_images_of_a_copy_are_not_in_the_case_listing_of_the_cli(vestige, lab, workspace):
    analysis_id = queue_analysis(workspace, ["metadata"], robustness=True)
    run_in_process(workspace, analysis_id)
    with workspace.db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(Image).where(Image.origin == "derived")) == 14
    listed = vestige("case", "list")
    assert listed.exit_code == 0 and re.search(r"CASE-A\s.*\b2\b", listed.stdout)
