"""Reports: making a case report (JSON, HTML, PDF or the signed bundle) and downloading it.

Making one goes through :func:`vestige.reports.export.export_report`, as
``vestige report`` does, which keeps it as a blob with a Report row and a
``report.exported`` custody event. Downloads are served from the verified
evidence store, never from the file on disk, and each is a
``report.downloaded`` custody event.
"""

from __future__ import annotations

import datetime as dt
import re

from flask import Blueprint, Response, flash, g, redirect, request, url_for

from vestige.analysis.analyses import latest_analysis
from vestige.core.errors import NotFoundError
from vestige.db.models import Case, Report
from vestige.reports.export import FORMATS, MEDIA_TYPES, export_report
from vestige_web.access import MAX_ID, find_case, require_act
from vestige_web.auth import require_login
from vestige_web.custody import record_view
from vestige_web.extensions import vestige
from vestige_web.images import evidence_response

bp = Blueprint("reports", __name__)
bp.before_request(require_login)

EXTENSIONS = {"json": "json", "html": "html", "pdf": "pdf", "bundle": "zip"}


def report_filename(case: Case, report: Report) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case.reference)
    return f"{safe}-report-{report.id}.{EXTENSIONS[report.format]}"


def make_report(case: Case, fmt: str) -> int:
    """Export case ``case``'s report in ``fmt`` as the current user; returns the Report id."""
    require_act(vestige.session, g.user, case, "export its report")
    workspace = vestige.workspace
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", case.reference)
    out = workspace.config.data_dir / "reports" / f"{safe}-{stamp}.{EXTENSIONS.get(fmt, 'bin')}"
    exported = export_report(workspace, vestige.pm, case.reference, fmt=fmt, out=out, actor=g.user.username)
    return exported.report_id


def find_report(report_id: int) -> tuple[Report, Case]:
    """The report if the user may see its case; otherwise the same 404 as for no report."""
    session = vestige.session
    report = session.get(Report, report_id) if 0 < report_id <= MAX_ID else None
    if report is not None:
        case = session.get(Case, report.case_id)
        try:
            return report, find_case(session, g.user, case.reference)
        except NotFoundError:
            pass
    raise NotFoundError(f"There is no report {report_id} that you can see.")


def report_download(report_id: int) -> Response:
    report, case = find_report(report_id)
    data = vestige.workspace.store.get(report.blob_sha256)
    record_view(case, "report.downloaded", {"report_id": report.id, "format": report.format, "sha256": report.blob_sha256})
    return evidence_response(data, MEDIA_TYPES[report.format].split(";")[0], filename=report_filename(case, report))


@bp.post("/cases/<path:reference>/reports")
def create(reference: str) -> object:
    case = find_case(vestige.session, g.user, reference)
    fmt = request.form.get("format", "")
    report_id = make_report(case, fmt if fmt in FORMATS else f"unknown ({fmt})")
    analysis = latest_analysis(vestige.session, case)
    if analysis is None:
        flash(f"Report {report_id} ({fmt}) is ready, but case {case.reference} has no analysis yet: the report lists "
              "the evidence and its custody, with no findings or verdicts. Run an analysis first for those.", "error")
    elif analysis.finished_at is None:
        flash(f"Report {report_id} ({fmt}) is ready, but analysis {analysis.id} is still {analysis.status} "
              f"({analysis.progress_done}/{analysis.progress_total}): the report holds only the findings made so far.",
              "error")
    else:
        flash(f"Report {report_id} ({fmt}) is ready to download.", "info")
    return redirect(url_for("cases.show", reference=case.reference) + "#reports")


@bp.get("/reports/<int:report_id>/download")
def download(report_id: int) -> Response:
    return report_download(report_id)
