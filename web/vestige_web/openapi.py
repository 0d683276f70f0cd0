"""The OpenAPI 3.0 document of ``/api/v1``, served by the app and checked by schemathesis in the tests."""

from __future__ import annotations

from typing import Any

from vestige import __version__
from vestige.analysis.serialise import ANALYSIS, CASE, CUSTODY_EVENT, FINDING, IMAGE_RECORD, IMAGE_ROW, REPORT
from vestige.db.models import REPORT_FORMATS

ERROR_STATUSES = {
    "400": "The request is malformed.",
    "401": "No valid API token was sent.",
    "403": "The token's user may read the case but not do this.",
    "404": "No such case or image among those the user may see.",
    "409": "It would duplicate something that exists.",
    "413": "The upload is larger than [web] max_upload_bytes.",
    "422": "A field's value cannot be accepted.",
}

_OBJ: dict[str, Any] = {"type": "object", "additionalProperties": True}
_STR_OR_NULL: dict[str, Any] = {"type": "string", "nullable": True}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["ok", "error", "status"],
        "properties": {"ok": {"type": "boolean", "enum": [False]}, "error": {"type": "string"},
                       "status": {"type": "integer"}},
        "additionalProperties": False,
    },
    "Case": CASE.schema(),
    "NewCase": {
        "type": "object",
        "required": ["reference", "title"],
        "properties": {
            "reference": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._/-]{0,63}$",
                          "description": "The lab's reference: up to 64 letters, digits, '.', '_', '/' or '-'."},
            "title": {"type": "string", "pattern": "\\S", "maxLength": 500},
        },
        "additionalProperties": False,
    },
    "MergedVerdict": {
        "type": "object",
        "nullable": True,
        "required": ["label", "source", "outcome", "rule"],
        "properties": {"label": {"type": "string", "enum": ["real", "synthetic", "unknown"]}, "source": _STR_OR_NULL,
                       "outcome": {"type": "string"}, "rule": {"type": "string"},
                       "confidence": {"type": "number", "nullable": True,
                                      "description": "The weakest calibrated confidence among the deciding findings."},
                       "explanation": {"type": "string", "description": "One sentence an examiner can read aloud."}},
    },
    "ImageRow": IMAGE_ROW.schema(required=("verdict",), extra={
        "verdict": {"$ref": "#/components/schemas/MergedVerdict"},
        "copies": {"type": "array", "description": "The lab's own copies of this image (robustness probes): "
                                                   "not evidence, and without a verdict of their own.",
                   "items": {"type": "object", "required": ["id", "operations"],
                             "properties": {"id": {"type": "integer"}, "operations": {"type": "array", "items": _OBJ}}}},
    }),
    "Finding": FINDING.schema(),
    "ImageRecord": IMAGE_RECORD.schema(required=("findings",), extra={
        "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
        "verdict": {"type": "object", "nullable": True},
        "robustness": {"type": "object", "nullable": True,
                       "description": "How the verdicts held under the robustness probes of the latest analysis "
                                      "that ran them."},
    }),
    "Analysis": ANALYSIS.schema(),
    "Report": REPORT.schema(),
    "CustodyEvent": CUSTODY_EVENT.schema(),
    "IngestSummary": {
        "type": "object",
        "required": ["ok", "ingested", "duplicates", "rejected", "near_duplicate_links"],
        "properties": {
            "ok": {"type": "boolean"},
            "ingested": {"type": "array", "items": _OBJ}, "duplicates": {"type": "array", "items": _OBJ},
            "rejected": {"type": "array", "items": {"type": "object", "required": ["file", "reason"],
                                                    "properties": {"file": {"type": "string"}, "reason": {"type": "string"}}}},
            "near_duplicate_links": {"type": "integer"},
        },
    },
}


def _ok(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "required": ["ok", *required],
            "properties": {"ok": {"type": "boolean", "enum": [True]}, **properties}}


def _responses(success: str, schema: dict[str, Any], errors: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {success: {"description": "Done.", "content": {"application/json": {"schema": schema}}}}
    for code in ("401", *errors):
        out[code] = {"description": ERROR_STATUSES[code],
                     "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    return out


_REF = {"name": "reference", "in": "path", "required": True,
        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"},
        "description": "The case reference ('/' may appear in it unescaped)."}
_IMAGE = {"name": "image_id", "in": "path", "required": True, "schema": {"type": "integer", "minimum": 1}}


def _get(summary: str, params: list[dict[str, Any]], schema: dict[str, Any], errors: tuple[str, ...] = ("404",)) -> dict[str, Any]:
    return {"get": {"summary": summary, "parameters": params, "responses": _responses("200", schema, errors)}}


def _items(ref: str) -> dict[str, Any]:
    return {"type": "array", "items": {"$ref": f"#/components/schemas/{ref}"}}


def openapi_document(server: str = "", *, detectors: list[str] | None = None) -> dict[str, Any]:
    """The document; ``server`` is the app's own base URL, ``detectors`` the installed detectors' names."""
    detector_names: dict[str, Any] = {"type": "string"}
    if detectors:
        detector_names["enum"] = detectors
    case_ref = {"$ref": "#/components/schemas/Case"}
    paths: dict[str, Any] = {
        "/cases": {
            **_get("Cases the token's user may see, newest first.",
                   [{"name": "q", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "Match reference or title."}],
                   _ok({"cases": _items("Case")}, ["cases"]), ()),
            "post": {
                "summary": "Open a case; its creator becomes its lead.",
                "requestBody": {"required": True,
                                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewCase"}}}},
                "responses": _responses("201", _ok({"case": case_ref}, ["case"]), ("400", "403", "409", "422")),
            },
        },
        "/cases/{reference}": _get("One case and its members (a custody event).", [_REF],
                                   _ok({"case": case_ref, "members": {"type": "array", "items": _OBJ}}, ["case", "members"])),
        "/cases/{reference}/images": {
            **_get("The case's images with their merged verdicts (a custody event).", [_REF], _ok({"images": _items("ImageRow")}, ["images"])),
            "post": {
                "summary": "Upload files or zip archives into the case (field 'files', repeated).",
                "parameters": [_REF],
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["files"],
                    "properties": {"files": {"type": "array", "minItems": 1, "items": {"type": "string", "format": "binary"}},
                                   "source": {"type": "string"}}}}}},
                "responses": _responses("200", {"$ref": "#/components/schemas/IngestSummary"}, ("403", "404", "409", "413", "422")),
            },
        },
        "/cases/{reference}/verdicts": _get(
            "Each judged image's merged verdict and findings, from its latest analysis (a custody event).", [_REF],
            _ok({"verdicts": {"type": "array", "items": _OBJ}}, ["verdicts"])),
        "/cases/{reference}/analyses": {
            **_get("The case's analyses, newest first.", [_REF], _ok({"analyses": _items("Analysis")}, ["analyses"])),
            "post": {
                "summary": "Run detectors on the case's evidence (all installed detectors when none are named).",
                "parameters": [_REF],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "additionalProperties": False,
                    "properties": {"detectors": {"type": "array", "items": detector_names, "uniqueItems": True},
                                   "robustness": {"type": "boolean"}}}}}},
                "responses": _responses("202", _ok({"analysis": {"$ref": "#/components/schemas/Analysis"},
                                                    "runs_in": {"type": "string"}}, ["analysis", "runs_in"]),
                                        ("400", "403", "404", "409", "422")),
            },
        },
        "/cases/{reference}/reports": {
            **_get("The case's reports, newest first.", [_REF], _ok({"reports": _items("Report")}, ["reports"])),
            "post": {
                "summary": "Make the case's report (a bundle is signed with the lab's key); a custody event.",
                "parameters": [_REF],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "required": ["format"], "additionalProperties": False,
                    "properties": {"format": {"type": "string", "enum": list(REPORT_FORMATS)}}}}}},
                "responses": _responses("201", _ok({"report": {"$ref": "#/components/schemas/Report"}}, ["report"]),
                                        ("400", "403", "404", "422")),
            },
        },
        "/reports/{report_id}": {"get": {
            "summary": "Download a report's bytes, verified against its SHA-256 (a custody event).",
            "parameters": [{"name": "report_id", "in": "path", "required": True,
                            "schema": {"type": "integer", "minimum": 1}}],
            "responses": {**_responses("200", {"type": "string", "format": "binary"}, ("404",)),
                          "200": {"description": "The report file.", "content": {
                              media: {"schema": {"type": "string", "format": "binary"}}
                              for media in ("application/json", "text/html", "application/pdf", "application/zip")}}},
        }},
        "/cases/{reference}/custody": _get("The custody log and whether its hash chain verifies (a custody event).", [_REF],
                                           _ok({"custody": {"type": "object", "required": ["intact", "events", "log"],
                                                            "properties": {"intact": {"type": "boolean"},
                                                                           "events": {"type": "integer"},
                                                                           "log": _items("CustodyEvent")}}},
                                               ["custody"])),
        "/images/{image_id}": _get("One image's whole record (a custody event).", [_IMAGE],
                                   _ok({"image": {"$ref": "#/components/schemas/ImageRecord"}}, ["image"])),
        "/images/{image_id}/verdicts": _get(
            "One image's findings and merged verdict (a custody event).", [_IMAGE],
            _ok({"image_id": {"type": "integer"}, "verdict": {"type": "object", "nullable": True},
                 "findings": _items("Finding")}, ["image_id", "verdict", "findings"])),
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "Vestige API", "version": __version__,
                 "description": "Cases, evidence images and verdicts. Errors are always "
                                "{\"ok\": false, \"error\": \"...\", \"status\": N}."},
        "servers": [{"url": f"{server}/api/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
