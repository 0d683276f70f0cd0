"""The JSON API under ``/api/v1``: bearer tokens, the same access rules as the pages, one error shape.

Every answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": "...",
"status": N}``. The session cookie is never accepted here, only
``Authorization: Bearer TOKEN`` (``vestige token create USER``), which is why
these routes need no CSRF token. The OpenAPI document is at
``/api/v1/openapi.json``.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, g, jsonify, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from vestige.access.accounts import case_members
from vestige.analysis.serialise import analysis_dict, case_dict, report_dict
from vestige.db.models import Report
from vestige.evidence.cases import evidence_count
from vestige.evidence.catalog import list_images
from vestige_web.access import find_case, find_image, visible_cases
from vestige_web.analyses import launch_analysis
from vestige_web.cases import open_case
from vestige_web.custody import custody_state, record_view
from vestige_web.evidence import (
    case_analyses,
    case_images,
    case_reports,
    detector_kinds,
    detector_list,
    image_details,
    latest_findings,
    merged_verdicts,
)
from vestige_web.extensions import vestige
from vestige_web.openapi import openapi_document
from vestige_web.reports import make_report, report_download
from vestige_web.uploads import ingest_uploads

bp = Blueprint("api", __name__, url_prefix="/api/v1")
PUBLIC_ENDPOINTS = {"api.openapi"}


@bp.before_request
def require_token() -> None:
    if g.user is None and request.endpoint not in PUBLIC_ENDPOINTS:
        raise Unauthorized(
            "Send a valid API token as 'Authorization: Bearer TOKEN'; `vestige token create USER` makes one.",
            www_authenticate=WWWAuthenticate("bearer", {"realm": "vestige"}),
        )


def ok(status: int = 200, **fields: Any):  # type: ignore[no-untyped-def]
    return jsonify({"ok": True, **fields}), status


def _json_body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, "The request body must be a JSON object.")
    return body


def _text_field(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str):
        abort(422, f"The field {name!r} must be a string.")
    return value


@bp.get("/openapi.json")
def openapi() -> Any:
    names = [d["name"] for d in detector_list(vestige.pm)]
    return jsonify(openapi_document(request.host_url.rstrip("/"), detectors=names))


@bp.get("/cases")
def list_cases() -> Any:
    rows = visible_cases(vestige.session, g.user, request.args.get("q", "").strip())
    return ok(cases=[case_dict(case, n) for case, n in rows])


@bp.post("/cases")
def create_case() -> Any:
    body = _json_body()
    case = open_case(_text_field(body, "reference"), _text_field(body, "title"))
    return ok(201, case=case_dict(case, 0))


@bp.get("/cases/<path:reference>")
def get_case(reference: str) -> Any:
    case = find_case(vestige.session, g.user, reference)
    record_view(case, "case.viewed")
    members = [{"user": name, "role": role} for name, role in case_members(vestige.session, case)]
    return ok(case=case_dict(case, evidence_count(case)), members=members)


@bp.get("/cases/<path:reference>/images")
def case_image_list(reference: str) -> Any:
    case = find_case(vestige.session, g.user, reference)
    record_view(case, "case.viewed", {"part": "images"})
    return ok(images=case_images(vestige.session, g.user, case, vestige.pm))


@bp.post("/cases/<path:reference>/images")
def upload_images(reference: str) -> Any:
    summary = ingest_uploads(vestige.workspace, reference, request.files.getlist("files"),
                             source=request.form.get("source", "").strip()[:1000] or "api upload")
    return ok(**summary.to_dict())


@bp.get("/cases/<path:reference>/verdicts")
def case_verdicts(reference: str) -> Any:
    session = vestige.session
    case = find_case(session, g.user, reference)
    record_view(case, "case.viewed", {"part": "verdicts"})
    ids = [row["id"] for row in list_images(session, case) if row["origin"] == "evidence"]  # copies: see robustness
    findings = latest_findings(session, ids, detector_kinds(vestige.pm))
    merged = merged_verdicts(findings)
    return ok(verdicts=[{"image_id": i, "verdict": merged[i], "findings": findings[i]} for i in ids if i in findings])


@bp.get("/cases/<path:reference>/analyses")
def analyses(reference: str) -> Any:
    case = find_case(vestige.session, g.user, reference)
    return ok(analyses=case_analyses(vestige.session, case, vestige.workspace.config))


@bp.post("/cases/<path:reference>/analyses")
def launch(reference: str) -> Any:
    body = _json_body()
    names = body.get("detectors", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        abort(422, "The field 'detectors' must be a list of detector names.")
    robustness = body.get("robustness", False)
    if not isinstance(robustness, bool):
        abort(422, "The field 'robustness' must be true or false.")
    case = find_case(vestige.session, g.user, reference)
    analysis, where = launch_analysis(case, names, robustness=robustness)
    return ok(202, analysis=analysis_dict(analysis), runs_in=where)


@bp.get("/cases/<path:reference>/reports")
def reports(reference: str) -> Any:
    case = find_case(vestige.session, g.user, reference)
    return ok(reports=[report_dict(r) for r in case_reports(vestige.session, case)])


@bp.post("/cases/<path:reference>/reports")
def create_report(reference: str) -> Any:
    fmt = _text_field(_json_body(), "format")
    case = find_case(vestige.session, g.user, reference)
    report_id = make_report(case, fmt)
    return ok(201, report=report_dict(vestige.session.get(Report, report_id)))


@bp.get("/reports/<int:report_id>")
def download_report(report_id: int) -> Any:
    return report_download(report_id)


@bp.get("/cases/<path:reference>/custody")
def custody(reference: str) -> Any:
    case = find_case(vestige.session, g.user, reference)
    record_view(case, "custody.viewed")
    return ok(custody=custody_state(case))


@bp.get("/images/<int:image_id>")
def get_image(image_id: int) -> Any:
    image = find_image(vestige.session, g.user, image_id)
    record_view(image.case, "image.viewed", {"image_id": image.id, "sha256": image.blob_sha256})
    return ok(image=image_details(vestige.session, g.user, image, vestige.pm))


@bp.get("/images/<int:image_id>/verdicts")
def image_verdicts(image_id: int) -> Any:
    image = find_image(vestige.session, g.user, image_id)
    record_view(image.case, "image.viewed", {"image_id": image.id, "sha256": image.blob_sha256, "part": "verdicts"})
    findings = latest_findings(vestige.session, [image.id], detector_kinds(vestige.pm)).get(image.id, [])
    merged = merged_verdicts({image.id: findings}).get(image.id) if findings else None
    return ok(image_id=image.id, verdict=merged, findings=findings)
