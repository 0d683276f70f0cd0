"""One serialiser per domain object (vestige.analysis.serialise): the CLI's --json, the JSON API and the OpenAPI document
agree on every object's keys, checked on real objects."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from test_web import app, client, lab  # noqa: F401  (shared fixtures)

from vestige.analysis import serialise
from vestige.db.models import Analysis, Blob, Case, Image, Perturbation, Report, Verdict, utcnow
from vestige.evidence.catalog import image_record, list_images
from vestige.evidence.custody import list_events


def bearer(lab, name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {lab.tokens[name]}"}


@pytest.fixture
def judged(workspace, lab):
    """CASE-A with a finished analysis, a finding, a kept report, and a lab-made copy of its first image."""
    a1 = lab.images["CASE-A"][0]
    with workspace.db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == "CASE-A")).scalar_one()
        analysis = Analysis(case_id=case.id, status="done", detectors=["fingerprint"], options={"robustness": True},
                            progress_done=1, progress_total=1, requested_by="alice", finished_at=utcnow())
        session.add(analysis)
        session.flush()
        session.add(Verdict(analysis_id=analysis.id, image_id=a1, detector="fingerprint", detector_version="2",
                            label="synthetic", source="stylegan2", scores={"stylegan2": 0.9}, confidence=0.9))
        original = session.get(Image, a1)
        session.add(Blob(sha256="1" * 64, size=original.size, media_type=original.media_type))
        copy = Image(case_id=case.id, blob_sha256="1" * 64, origin="derived",
                     original_filename="a1 (jpeg q70)", acquired_by="alice", media_type=original.media_type,
                     format=original.format, mode=original.mode, width=original.width, height=original.height,
                     size=original.size, phash=original.phash, dhash=original.dhash, whash=original.whash,
                     colorhash=original.colorhash)
        session.add(copy)
        session.flush()
        session.add(Perturbation(image_id=copy.id, parent_id=a1, basis="applied",
                                 operations=[{"op": "jpeg", "params": {"quality": 70}}]))
        session.add(Blob(sha256="0" * 64, size=3, media_type="application/json"))
        session.add(Report(case_id=case.id, analysis_id=analysis.id, format="json", blob_sha256="0" * 64, size=3,
                           created_by="alice"))
    return a1


def _schemas(client) -> dict:
    return client.get("/api/v1/openapi.json").json["components"]["schemas"]


def test_each_serialiser_writes_exactly_its_shapes_keys(workspace, judged):
    with workspace.db.session() as session:
        case = session.execute(sa.select(Case).where(Case.reference == "CASE-A")).scalar_one()
        analysis = session.execute(sa.select(Analysis)).scalars().one()
        verdict = session.execute(sa.select(Verdict)).scalars().one()
        report = session.execute(sa.select(Report)).scalars().one()
        rows = list_images(session, case)
        produced = {
            "CASE": serialise.case_dict(case, 2),
            "ANALYSIS": {**serialise.analysis_dict(analysis),
                         # the unfinished analysis's progress keys, from an analysis still running
                         **serialise.analysis_dict(Analysis(id=9, status="running", detectors=["fingerprint"],
                                                            options={"images": []}, progress_done=0, progress_total=0,
                                                            requested_by="alice", created_at=utcnow()),
                                                   session, workspace.config)},
            "VERDICT": serialise.verdict_as_dict(verdict),
            "FINDING": serialise.finding_dict(verdict, {}),
            "REPORT": serialise.report_dict(report),
            "CUSTODY_EVENT": serialise.custody_event_dict(list_events(session, case)[0]),
            "IMAGE_ROW": {key: None for row in rows for key in row},  # evidence and copy together
            "IMAGE_RECORD": image_record(session, session.get(Image, judged)),
        }
        evidence = next(row for row in rows if row["origin"] == "evidence")
    for name, data in produced.items():
        assert set(data) == set(getattr(serialise, name).properties), name
    assert set(evidence) == set(serialise.IMAGE_ROW.required)


def test_the_openapi_schemas_list_exactly_the_keys_the_api_answers_with(client, lab, judged):
    schemas = _schemas(client)
    headers = bearer(lab, "alice")
    case = client.get("/api/v1/cases/CASE-A", headers=headers).json["case"]
    analysis = client.get("/api/v1/cases/CASE-A/analyses", headers=headers).json["analyses"][0]
    report = client.get("/api/v1/cases/CASE-A/reports", headers=headers).json["reports"][0]
    images = client.get("/api/v1/cases/CASE-A/images", headers=headers).json["images"]
    record = client.get(f"/api/v1/images/{judged}", headers=headers).json["image"]
    finding = client.get(f"/api/v1/images/{judged}/verdicts", headers=headers).json["findings"][0]
    event = client.get("/api/v1/cases/CASE-A/custody", headers=headers).json["custody"]["log"][0]
    assert set(case) == set(schemas["Case"]["properties"])
    assert set(analysis) == set(serialise.ANALYSIS.required) <= set(schemas["Analysis"]["properties"])  # finished
    assert set(schemas["Analysis"]["properties"]) == set(serialise.ANALYSIS.properties)
    assert set(report) == set(schemas["Report"]["properties"])
    first = next(row for row in images if row["id"] == judged)
    assert set(first) | {"parent_id", "operations"} == set(schemas["ImageRow"]["properties"])
    assert set(record) == set(schemas["ImageRecord"]["properties"])
    assert set(finding) == set(schemas["Finding"]["properties"])
    assert set(event) == set(schemas["CustodyEvent"]["properties"])
    for name in ("Case", "Analysis", "Report", "ImageRow", "ImageRecord", "Finding", "CustodyEvent"):
        assert set(schemas[name]["required"]) <= set(schemas[name]["properties"]), name


def test_a_key_added_to_a_shape_appears_in_the_openapi_document(monkeypatch):
    """The document is built from the shapes: one edit next to the serialiser is enough."""
    import importlib

    import vestige_web.openapi

    monkeypatch.setitem(serialise.REPORT.properties, "pages", {"type": "integer"})
    try:
        document = importlib.reload(vestige_web.openapi).openapi_document()
        assert "pages" in document["components"]["schemas"]["Report"]["properties"]
    finally:
        monkeypatch.undo()
        importlib.reload(vestige_web.openapi)


def test_the_cli_and_the_api_print_the_same_json_for_the_same_objects(vestige, client, lab, judged):
    """`vestige case show`, `images`, `verdicts` and `custody log` with --json print what the API answers."""
    headers = bearer(lab, "alice")
    api_case = client.get("/api/v1/cases/CASE-A", headers=headers).json["case"]
    cli_case = json.loads(vestige("case show CASE-A --json").stdout)
    assert {**cli_case, "custody_events": None} == {**api_case, "custody_events": None}  # the view added an event
    api_analysis = client.get("/api/v1/cases/CASE-A/analyses", headers=headers).json["analyses"][0]
    cli_verdicts = json.loads(vestige("verdicts CASE-A --json").stdout)
    assert cli_verdicts["analysis"] == api_analysis
    api_finding = client.get(f"/api/v1/images/{judged}/verdicts", headers=headers).json["findings"][0]
    assert {k: api_finding[k] for k in serialise.VERDICT.properties} == cli_verdicts["verdicts"][0]
    cli_log = json.loads(vestige("custody log CASE-A --json").stdout)
    api_log = client.get("/api/v1/cases/CASE-A/custody", headers=headers).json["custody"]["log"]
    assert api_log[:len(cli_log)] == cli_log
    cli_images = {row["id"]: row for row in json.loads(vestige("images CASE-A --json").stdout)}
    for row in client.get("/api/v1/cases/CASE-A/images", headers=headers).json["images"]:
        # near_duplicates differs by design: the API counts only links to cases the user may see (alice: not CASE-B)
        same = [k for k in serialise.IMAGE_ROW.required if k != "near_duplicates"]
        assert {k: row[k] for k in same} == {k: cli_images[row["id"]][k] for k in same}
