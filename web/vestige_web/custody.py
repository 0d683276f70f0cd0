"""The custody log of a case with its verification state, and recording views as custody events."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, render_template, request

from vestige.analysis.serialise import custody_event_dict
from vestige.core.errors import VestigeError
from vestige.db.models import Case
from vestige.evidence.checkpoints import check_against_checkpoint
from vestige.evidence.custody import NewEvent, list_events, verify_chain
from vestige_web.access import find_case
from vestige_web.auth import require_login
from vestige_web.errors import is_api_request
from vestige_web.extensions import vestige

bp = Blueprint("custody", __name__)
bp.before_request(require_login)


def record_view(case: Case, action: str, details: dict[str, Any] | None = None) -> None:
    """Append ``action`` by the current user to the case's chain and commit it.

    Pages and API calls that show evidence record who saw what (``case.viewed``,
    ``image.viewed``, ``custody.viewed``) and exports record what left
    (``image.exported``, ``report.exported``); the ``via`` detail says
    whether through the pages or the API.
    """
    via = "api" if is_api_request() else "web"
    event = NewEvent(actor=g.user.username, action=action, details={**(details or {}), "via": via})
    vestige.custody.append(vestige.session, case, event)


def custody_state(case: Case) -> dict[str, Any]:
    """The chain's events, whether it verifies (and matches its signed checkpoint), and the last store check."""
    session = vestige.session
    report = verify_chain(session, case)
    stored = list_events(session, case)
    events = [custody_event_dict(e) for e in stored]
    intact, problem, checkpoint = report.intact, report.problem, None
    if intact:
        try:
            check = check_against_checkpoint(vestige.workspace.config, case.reference, stored)
            intact, checkpoint = check.ok, check.sentence
        except VestigeError as exc:  # a checkpoint file without the lab's public key here
            intact, checkpoint = False, str(exc)
        problem = None if intact else checkpoint
    store = next(({"at": e["at"], "actor": e["actor"], **e["details"]} for e in reversed(events)
                  if e["action"] == "store.verified"), None)
    return {"intact": intact, "events": report.events, "problem": problem, "checkpoint": checkpoint,
            "sentence": report.sentence() if problem is None else f"chain broken: {problem}", "store": store,
            "log": events}


#: Events per page of the custody page.
PER_PAGE = 100


def custody_page(events: list[dict[str, Any]], *, action: str = "", actor: str = "", page: int = 1,
                 per_page: int = PER_PAGE) -> dict[str, Any]:
    """One page of the log, newest first, keeping only ``action`` and ``actor`` when given; with the choices
    for the filters and the page count. The chain is always verified whole, whatever the page shows."""
    chosen = [e for e in reversed(events) if (not action or e["action"] == action) and (not actor or e["actor"] == actor)]
    pages = max(1, -(-len(chosen) // per_page))
    page = min(max(page, 1), pages)
    return {"rows": chosen[(page - 1) * per_page: page * per_page], "page": page, "pages": pages,
            "matching": len(chosen), "action": action, "actor": actor,
            "actions": sorted({e["action"] for e in events}), "actors": sorted({e["actor"] for e in events})}


@bp.get("/cases/<path:reference>/custody")
def log(reference: str) -> str:
    case = find_case(vestige.session, g.user, reference)
    record_view(case, "custody.viewed")
    custody = custody_state(case)
    page = request.args.get("page", "1")
    shown = custody_page(custody["log"], action=request.args.get("action", ""), actor=request.args.get("actor", ""),
                         page=int(page) if page.isdigit() and len(page) < 9 else 1)
    return render_template("custody.html", case=case, custody=custody, shown=shown)
