"""Cases: the list with search, opening a case, the case page, its live analyses and its members."""

from __future__ import annotations

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for

from vestige.access.accounts import add_member, case_members, get_user
from vestige.core.errors import ConflictError, InvalidInputError
from vestige.evidence.cases import create_case
from vestige.reports.export import FORMATS
from vestige_web.access import can_act, case_role, find_case, require_case_creator, visible_cases
from vestige_web.auth import require_login
from vestige_web.custody import record_view
from vestige_web.evidence import case_analyses, case_images, case_reports, detector_choices
from vestige_web.extensions import vestige

bp = Blueprint("cases", __name__)
#: The width of ``cases.title``; PostgreSQL refuses longer, so it is checked before.
MAX_TITLE = 500
bp.before_request(require_login)


def open_case(reference: str, title: str):  # type: ignore[no-untyped-def]
    """Open a case for the current user, who becomes its lead."""
    require_case_creator(g.user)
    if len(title.strip()) > MAX_TITLE:
        raise InvalidInputError(f"a case title has at most {MAX_TITLE} characters")
    session = vestige.session
    case = create_case(session, reference=reference, title=title, actor=g.user.username)
    add_member(session, case, g.user, role="lead", actor=g.user.username)
    session.commit()
    return case


@bp.get("/")
def home() -> object:
    return redirect(url_for("cases.index"))


@bp.get("/cases")
def index() -> str:
    search = request.args.get("q", "").strip()
    rows = visible_cases(vestige.session, g.user, search)
    return render_template("cases.html", rows=rows, search=search, can_create=g.user.role != "viewer")


@bp.post("/cases")
def create() -> object:
    try:
        case = open_case(request.form.get("reference", ""), request.form.get("title", ""))
    except (InvalidInputError, ConflictError) as exc:
        flash(exc.message, "error")
        return redirect(url_for("cases.index"))
    flash(f"Case {case.reference} is open. Add evidence to it below.", "info")
    return redirect(url_for("cases.show", reference=case.reference))


@bp.get("/cases/<path:reference>")
def show(reference: str) -> str:
    session = vestige.session
    case = find_case(session, g.user, reference)
    record_view(case, "case.viewed")
    images = case_images(session, g.user, case, vestige.pm)
    acting = can_act(session, g.user, case)
    detectors = detector_choices(session, vestige.workspace.store, vestige.pm, len(images)) if acting else []
    return render_template(
        "case.html", case=case, images=images,
        analyses=case_analyses(session, case, vestige.workspace.config), reports=case_reports(session, case),
        members=case_members(session, case), role=case_role(session, g.user, case),
        can_act=acting, detectors=detectors, report_formats=FORMATS,
    )


@bp.post("/cases/<path:reference>/members")
def add_case_member(reference: str) -> object:
    session = vestige.session
    case = find_case(session, g.user, reference)
    if case_role(session, g.user, case) != "lead":
        abort(403, f"Only the lead of case {case.reference} or an admin can change who works on it.")
    user = get_user(session, request.form.get("username", "").strip())
    add_member(session, case, user, role=request.form.get("role", "viewer"), actor=g.user.username)
    session.commit()
    flash(f"{user.username} now works on case {case.reference}.", "info")
    return redirect(url_for("cases.show", reference=case.reference))
