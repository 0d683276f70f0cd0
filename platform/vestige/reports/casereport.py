"""The case report as data: one JSON-ready document that every format renders.

:func:`build_case_report` reads a case back from the database (its evidence
images, the findings of its latest analysis, the merged verdicts, robustness,
perturbation history, near-duplicates, the custody log and its verification)
and adds methods, limitations and a reproducibility block. The document is
described by ``schema/report-v1.json``; floats are rounded to
:data:`vestige.plugin.FLOAT_DIGITS` places so re-runs give the same numbers.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige import __version__
from vestige.analysis.analyses import evidence_images, latest_analysis
from vestige.analysis.merge import merge_verdicts
from vestige.analysis.verdicts import analysis_verdicts
from vestige.core.config import Config, config_as_dict
from vestige.core.plugins import VestigePluginManager, get_detectors, plugin_infos
from vestige.db.models import Case, Image, ModelArtifact, Verdict
from vestige.evidence.catalog import image_record
from vestige.evidence.custody import list_events, verify_chain
from vestige.plugin import _round
from vestige.reports.environment import runtime_environment
from vestige.reports.sections import plugin_sections

REPORT_FORMAT = "vestige-case-report"
REPORT_VERSION = 1

LIMITATIONS = (
    "Provenance metadata is a claim, not proof: it is trivially forged or stripped, so its absence says nothing "
    "and its presence must agree with the other detectors.",
    "A classifier can only name the generators it was trained on. Each trained model carries its validated domain "
    "(image sizes, JPEG qualities, a novelty model fitted on its training images, docs/verdicts.md): an image "
    "outside it is inconclusive for that model, and one inside it can still come from a generator the model never "
    "saw; the novelty model rejects most such images, not all (docs/benchmarks.md, vestige bench openworld).",
    "Confidences are calibrated on the lab's reference images; they do not transfer to images unlike them "
    "(heavy recompression, resizing, screenshots, crops). The robustness section shows how verdicts move under such changes.",
    "CPU inference is deterministic; GPU inference in reduced precision is not bit-exact. Numbers are rounded to "
    "six decimals and each finding records its device and precision; re-run on the same kind of device to reproduce them.",
    "The custody chain proves the database record has not been edited without recomputing it; against someone "
    "who can rewrite the whole database, only the signed evidence bundle is proof.",
)

def domain_limitations(images: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per detector: how many of the case's images were inside its model's validated domain, and why not the others."""
    inside: dict[str, list[str]] = {}
    outside: dict[str, list[str]] = {}
    for image in images:
        for finding in image.get("findings") or []:
            domain = (finding.get("evidence") or {}).get("domain")
            if not isinstance(domain, Mapping):
                continue
            name = str(image.get("filename") or image.get("id"))
            if domain.get("in_domain"):
                inside.setdefault(finding["detector"], []).append(name)
            else:
                outside.setdefault(finding["detector"], []).append(f"{name} ({domain.get('reason')})")
    lines = []
    for detector in sorted(set(inside) | set(outside)):
        judged = len(inside.get(detector, [])) + len(outside.get(detector, []))
        line = (f"Validated domain of {detector}: {len(inside.get(detector, []))} of the {judged} images it was given "
                "were inside it")
        if outside.get(detector):
            line += "; outside it, and so inconclusive for it: " + "; ".join(outside[detector])
        lines.append(line + ".")
    return lines


MERGE_RULES = (
    "Findings are merged per image by explicit rules (docs/verdicts.md): provenance metadata first, then "
    "verification, then classifier agreement; the first tier with a conclusive finding decides, and agreement, "
    "conflict, inconclusive and unknown-generator are reported as outcomes, never hidden."
)


def _finding_row(verdict: Verdict, kind: str) -> dict[str, Any]:
    return {
        "detector": verdict.detector,
        "detector_version": verdict.detector_version,
        "kind": kind,
        "model_sha256": verdict.model_sha256,
        "label": verdict.label,
        "source": verdict.source,
        "scores": verdict.scores or {},
        "confidence": verdict.confidence,
        "evidence": verdict.evidence or {},
        "pictures": [
            {"name": p["name"], "caption": p.get("caption", ""), "media_type": p.get("media_type", "image/png"),
             "sha256": p["sha256"]}
            for p in (verdict.pictures or [])
        ],
        "device": verdict.device,
        "precision": verdict.precision,
        "runtime_ms": verdict.runtime_ms,
        "error": verdict.error,
    }


_RELATED = (("history", "parent"), ("derivatives", "image"))


def _without_probe_lookalikes(session: Session, perturbations: dict[str, list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Drop *observed* links to images the lab derived (robustness probes look like their originals by design).

    The *applied* links to those probes stay: they are the probes' history.
    """
    related = {e[rel]["id"] for key, rel in _RELATED for e in perturbations[key] if e["basis"] == "observed" and e.get(rel)}
    derived = set(session.execute(
        sa.select(Image.id).where(Image.id.in_(related), Image.origin == "derived")).scalars()) if related else set()
    return {key: [e for e in perturbations[key]
                  if not (e["basis"] == "observed" and e.get(rel) and e[rel]["id"] in derived)]
            for key, rel in _RELATED}


def _near_duplicates(perturbations: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    rows = []
    for key, relation in _RELATED:
        for entry in perturbations[key]:
            other = entry.get(relation)
            if entry["basis"] == "observed" and other is not None:
                rows.append({**other, "distance": entry["distance"], "hash_kind": entry["hash_kind"]})
    return sorted(rows, key=lambda r: (r["distance"] if r["distance"] is not None else 99, r["id"]))


def _image_entry(session: Session, image: Image, findings: list[dict[str, Any]], summary: dict[str, Any]) -> dict[str, Any]:
    record = image_record(session, image)
    perturbations = _without_probe_lookalikes(session, record["perturbations"])
    merged = (summary.get("images") or {}).get(str(image.id))
    if merged is None and findings:
        merged = merge_verdicts(findings)
    robustness = (summary.get("robustness") or {}).get(str(image.id))
    return {
        "id": image.id,
        "sha256": image.blob_sha256,
        "filename": image.original_filename,
        "media_type": image.media_type,
        "format": image.format,
        "width": image.width,
        "height": image.height,
        "size": image.size,
        "source": image.source,
        "acquired_by": image.acquired_by,
        "acquired_at": record["acquired_at"],
        "occurrences": record["occurrences"],
        "hashes": record["hashes"],
        "findings": findings,
        "merged": merged,
        "robustness": robustness,
        "perturbations": perturbations,
        "near_duplicates": _near_duplicates(perturbations),
    }


def _custody(session: Session, case: Case) -> dict[str, Any]:
    check = verify_chain(session, case)
    return {
        "intact": check.intact,
        "events": check.events,
        "problem": check.problem,
        "head": case.custody_head,
        "log": [
            {"seq": e.seq, "at": e.at, "actor": e.actor, "action": e.action, "details": json.loads(e.details),
             "prev_hash": e.prev_hash, "hash": e.hash}
            for e in list_events(session, case)
        ],
    }


def _summary(images: Sequence[dict[str, Any]]) -> dict[str, Any]:
    outcomes: dict[str, int] = {}
    rows = []
    for image in images:
        merged = image["merged"] or {}
        outcome = merged.get("outcome", "not analysed")
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        rows.append({"image_id": image["id"], "filename": image["filename"], "sha256": image["sha256"],
                     "label": merged.get("label"), "source": merged.get("source"), "outcome": outcome,
                     "detectors": len(image["findings"])})
    return {"images": len(images), "outcomes": dict(sorted(outcomes.items())), "rows": rows}


def _models(session: Session, images: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    used = sorted({(f["detector"], f["detector_version"], f["model_sha256"])
                   for image in images for f in image["findings"] if f["model_sha256"]})
    artifacts = {a.sha256: a for a in session.execute(
        sa.select(ModelArtifact).where(ModelArtifact.sha256.in_([sha for _, _, sha in used]))).scalars()}
    return [{"detector": name, "detector_version": version, "sha256": sha,
             "filename": artifacts[sha].filename if sha in artifacts else None,
             # a model whose time budget ended its training before it converged is never shown as ordinary
             "under_trained": bool((artifacts[sha].metrics or {}).get("under_trained")) if sha in artifacts else None}
            for name, version, sha in used]


def build_case_report(session: Session, case: Case, *, config: Config, pm: VestigePluginManager, actor: str) -> dict[str, Any]:
    """The whole report of ``case`` as a JSON-ready document (schema ``report-v1``)."""
    analysis = latest_analysis(session, case)
    detectors = get_detectors(pm)
    verdicts: list[Verdict] = []
    if analysis is not None:
        verdicts = analysis_verdicts(session, analysis)
    by_image: dict[int, list[dict[str, Any]]] = {}
    # The kinds the analysis recorded when it ran; the installed detectors' for older analyses.
    kinds = {name: d.kind for name, d in detectors.items()}
    kinds.update(((analysis.options or {}).get("kinds") or {}) if analysis is not None else {})
    for verdict in verdicts:
        kind = kinds.get(verdict.detector, "attribution")
        by_image.setdefault(verdict.image_id, []).append(_finding_row(verdict, kind))
    summary = (analysis.summary if analysis is not None else None) or {}

    evidence = evidence_images(session, case)
    evidence_ids = {image.id for image in evidence}
    images = [_image_entry(session, image, by_image.get(image.id, []), summary) for image in evidence]
    used_detectors = sorted({f["detector"] for image in images for f in image["findings"]})
    document = {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        "generated_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "generated_by": actor,
        "case": {"reference": case.reference, "title": case.title, "status": case.status,
                 "created_at": case.created_at.isoformat(), "created_by": case.created_by},
        "analysis": None if analysis is None else {
            "id": analysis.id, "status": analysis.status, "detectors": list(analysis.detectors or []),
            "options": analysis.options or {}, "requested_by": analysis.requested_by,
            "created_at": analysis.created_at.isoformat(),
            "finished_at": analysis.finished_at.isoformat() if analysis.finished_at else None,
        },
        "summary": _summary(images),
        "images": images,
        "custody": _custody(session, case),
        "methods": {
            "merge_rules": MERGE_RULES,
            "detectors": [
                {"name": name, "version": detectors[name].version if name in detectors else None,
                 "kind": detectors[name].kind if name in detectors else None,
                 "description": detectors[name].description if name in detectors else "not installed on this host"}
                for name in used_detectors
            ],
        },
        "limitations": [*LIMITATIONS, *domain_limitations(images)],
        "reproducibility": {
            "vestige": __version__,
            "plugins": [{"name": i.name, "version": i.version, "error": i.error} for i in plugin_infos(pm)],
            "models": _models(session, images),
            "configuration": config_as_dict(config),
            "environment": runtime_environment(),
        },
        # The lab's own copies (robustness probes) are not evidence: plugins see the evidence's findings only.
        "sections": plugin_sections(pm, case=case, verdicts=[v for v in verdicts if v.image_id in evidence_ids]),
    }
    return _round(document)
