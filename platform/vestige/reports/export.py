"""Writing a case report: render it, keep it as a blob with a Report row, and record the export in custody."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from vestige.evidence.bundle import BundleFile, build_bundle, custody_log_document, original_path, picture_path

from vestige.core.errors import InvalidInputError, StoreError
from vestige.core.plugins import VestigePluginManager
from vestige.core.workspace import Workspace
from vestige.db.models import Case, Report
from vestige.db.rows import record_blob
from vestige.evidence.cases import get_case
from vestige.evidence.checkpoints import case_checkpoint_lines
from vestige.evidence.custody import list_events, record_event
from vestige.evidence.keys import load_signing_key
from vestige.evidence.store import BlobStore
from vestige.reports.casereport import build_case_report
from vestige.reports.html import render_html
from vestige.reports.jsonreport import report_json_bytes, report_problems
from vestige.reports.pdf import render_pdf
from vestige.reports.pictures import ReportPictures

FORMATS = ("json", "html", "pdf", "bundle")
CHECKPOINTS_PATH = "custody/checkpoints.jsonl"
MEDIA_TYPES = {
    "json": "application/json",
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "bundle": "application/zip",
}


@dataclass(frozen=True)
class ExportedReport:
    report_id: int
    format: str
    path: Path
    sha256: str
    size: int


def render(fmt: str, document: dict[str, Any], pictures: ReportPictures) -> bytes:
    """One report format's bytes (``json``, ``html`` or ``pdf``)."""
    if fmt == "json":
        return report_json_bytes(document)
    if fmt == "html":
        return render_html(document, pictures).encode("utf-8")
    if fmt == "pdf":
        return render_pdf(document, pictures)
    raise InvalidInputError(f"unknown report format {fmt!r}; formats are {', '.join(FORMATS)}")


def record_report(session: Session, store: BlobStore, case: Case, *, fmt: str, data: bytes, analysis_id: int | None,
                  actor: str, signature: str | None = None, filename: str | None = None) -> Report:
    """Keep a written report: its bytes as a blob, a Report row, and a ``report.exported`` custody event."""
    sha256 = store.put(data)
    record_blob(session, sha256, len(data), MEDIA_TYPES[fmt])
    report = Report(case_id=case.id, analysis_id=analysis_id, format=fmt, blob_sha256=sha256, size=len(data),
                    signature=signature, created_by=actor)
    session.add(report)
    session.flush()
    record_event(session, case, actor=actor, action="report.exported", details={
        "report_id": report.id, "format": fmt, "sha256": sha256, "size": len(data), "analysis_id": analysis_id,
        "file": filename,
    })
    return report


def build_checked_report(session: Session, case: Case, *, workspace: Workspace, pm: VestigePluginManager,
                         actor: str) -> dict[str, Any]:
    """The report document, checked against its schema: a report that breaks its own schema is a bug."""
    document = build_case_report(session, case, config=workspace.config, pm=pm, actor=actor)
    problems = report_problems(document)
    if problems:
        raise AssertionError("the report does not match schema report-v1: " + "; ".join(problems[:5]))
    return document


def _bundle(session: Session, store: BlobStore, case: Case, document: dict[str, Any], pictures: ReportPictures, *,
            signing_key: Ed25519PrivateKey, actor: str, bundle_name: str, checkpoints: bytes = b"") -> tuple[bytes, str]:
    """Render and record the three reports, then zip them with the originals, pictures and custody log."""
    analysis_id = document["analysis"]["id"] if document["analysis"] else None
    files = []
    for fmt in ("json", "html", "pdf"):
        path = f"reports/report.{fmt}"
        data = render(fmt, document, pictures)
        record_report(session, store, case, fmt=fmt, data=data, analysis_id=analysis_id, actor=actor, filename=path)
        files.append(BundleFile(path, "report", data))
    for image in document["images"]:
        files.append(BundleFile(original_path(image["id"], image["filename"]), "original", store.get(image["sha256"])))
    seen = set()
    for image in document["images"]:
        for finding in image["findings"]:
            for picture in finding["pictures"]:
                if picture["sha256"] not in seen:
                    seen.add(picture["sha256"])
                    files.append(BundleFile(picture_path(picture["sha256"], picture["media_type"]), "picture",
                                            store.get(picture["sha256"])))
    if checkpoints:  # the case's signed checkpoints, so a reviewer can hold the chain against them
        files.append(BundleFile(CHECKPOINTS_PATH, "checkpoints", checkpoints))
    # The log as it stands now, with the inner reports' events; the bundle's own event follows it.
    custody = custody_log_document(case.reference, list_events(session, case), case.custody_head, case.custody_count)
    return build_bundle(document["case"], files, custody=custody, created_at=document["generated_at"], created_by=actor,
                        signing_key=signing_key, bundle_name=bundle_name)


def require_intact_store(document: dict[str, Any], pictures: ReportPictures) -> None:
    """Refuse a report that would list evidence whose stored bytes no longer match their hash."""
    if not pictures.store_problems:
        return
    bad = []
    for image in document["images"]:
        if image["sha256"] in pictures.store_problems:
            bad.append(f"image {image['id']} {image['filename']!r}")
        for finding in image["findings"]:
            bad += [f"a picture of {finding['detector']}'s finding on image {image['id']}"
                    for picture in finding["pictures"] if picture["sha256"] in pictures.store_problems]
    first = next(iter(pictures.store_problems.values())).split("; restore")[0]
    raise StoreError(
        f"no report written: {len(bad)} file(s) it would include cannot be served as stored "
        f"({', '.join(bad[:5])}{', …' if len(bad) > 5 else ''}: {first}); run `vestige store verify "
        f"{document['case']['reference']}` and restore them from a backup"
    )


def _write_file(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically, so a reader never sees half a report."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except OSError as exc:
        raise InvalidInputError(f"cannot write the report to {path}: {exc.strerror}") from None


def export_report(workspace: Workspace, pm: VestigePluginManager, reference: str, *, fmt: str, out: Path,
                  actor: str) -> ExportedReport:
    """Write case ``reference``'s report in ``fmt`` to ``out`` and record it (a bundle records its inner reports too)."""
    if fmt not in FORMATS:
        raise InvalidInputError(f"unknown report format {fmt!r}; formats are {', '.join(FORMATS)}")
    signing_key = load_signing_key(workspace.config) if fmt == "bundle" else None  # fail before writing anything
    with workspace.db.session() as session:
        case = get_case(session, reference)
        document = build_checked_report(session, case, workspace=workspace, pm=pm, actor=actor)
        pictures = ReportPictures(workspace.store, document)  # reads and re-hashes every blob the report includes
        require_intact_store(document, pictures)
        analysis_id = document["analysis"]["id"] if document["analysis"] else None
        signature = None
        if fmt == "bundle":
            data, signature = _bundle(session, workspace.store, case, document, pictures,
                                      signing_key=signing_key, actor=actor, bundle_name=out.name,
                                      checkpoints=case_checkpoint_lines(workspace.config, case.reference))
        else:
            data = render(fmt, document, pictures)
        report = record_report(session, workspace.store, case, fmt=fmt, data=data, analysis_id=analysis_id,
                               actor=actor, signature=signature, filename=out.name)
        _write_file(out, data)  # before the commit: a report that could not be written is not recorded
        return ExportedReport(report.id, fmt, out, report.blob_sha256, report.size)
