"""Analyses: launching one on a case (with a choice of detectors) and its live progress.

Launching is :func:`vestige.jobs.launch.start_analysis`, as for ``vestige
analyze``: tasks go to the broker when workers serve their queues. On the embedded default with no
``vestige worker`` running, the analysis runs in a background thread of the
web process instead, so ``vestige serve`` alone can work a case end to end;
the page polls its progress either way.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from flask import Blueprint, flash, g, jsonify, redirect, request, url_for

from vestige.core.errors import ConflictError, VestigeError
from vestige.core.workspace import Workspace
from vestige.db.models import Analysis, Case
from vestige_web.access import find_case, require_act
from vestige_web.auth import require_login
from vestige_web.evidence import case_analyses
from vestige_web.extensions import vestige

bp = Blueprint("analyses", __name__)
bp.before_request(require_login)


def _run_in_background(workspace: Workspace, analysis_id: int) -> threading.Thread:
    from vestige.jobs.dispatch import run_in_process

    thread = threading.Thread(target=run_in_process, args=(workspace, analysis_id), kwargs={"worker": "web-in-process"},
                              name=f"vestige-analysis-{analysis_id}", daemon=True)
    thread.start()
    return thread


def launch_analysis(case: Case, names: Sequence[str], *, robustness: bool) -> tuple[Analysis, str]:
    """Request an analysis of ``case`` by the current user and start it; returns it and where it runs."""
    from vestige.jobs.launch import HERE, start_analysis

    session, workspace = vestige.session, vestige.workspace
    require_act(session, g.user, case, "analyse it")
    if not any(image.origin == "evidence" for image in case.images):
        raise ConflictError(f"Case {case.reference} has no evidence images to analyse yet; add some first.")
    started = start_analysis(workspace, session, case, vestige.pm, names, actor=g.user.username, robustness=robustness,
                             run_here=lambda started: _run_in_background(workspace, started.analysis.id))
    return started.analysis, "web process" if started.where == HERE else "workers"


@bp.post("/cases/<path:reference>/analyses")
def launch(reference: str) -> object:
    case = find_case(vestige.session, g.user, reference)
    back = redirect(url_for("cases.show", reference=case.reference) + "#analyses")
    names = [n for n in request.form.getlist("detectors") if n]
    if not names:  # the form always names its choice; none checked is a mistake, not "the defaults"
        flash("Choose at least one detector to run.", "error")
        return back
    try:
        analysis, where = launch_analysis(case, names, robustness=bool(request.form.get("robustness")))
    except VestigeError as exc:  # said on the case page, next to the form, not on a page of its own
        vestige.session.rollback()
        if exc.status in (401, 403, 404):
            raise
        flash(exc.message, "error")
        return back
    flash(f"Analysis {analysis.id} started ({where}); its progress shows below.", "info")
    return back


@bp.get("/cases/<path:reference>/analyses.json")
def progress(reference: str) -> object:
    """What the case page polls for live progress; status only, so not a custody event."""
    case = find_case(vestige.session, g.user, reference)
    return jsonify({"ok": True, "analyses": case_analyses(vestige.session, case, vestige.workspace.config)})
