"""Robustness probes: perturbed derivatives of each image, and whether verdicts hold under them.

Each evidence image gets one derivative per probe (JPEG 90/75/50, resize
0.75/0.5, centre crop 90 %, Gaussian blur), made by the perturbation plugins
and stored in the case as a *derived* image with an *applied* perturbation
record (parent = the original, ``operations`` = the chain). Derivatives are
made once: a later analysis finds and reuses them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from vestige.core.plugins import VestigePluginManager
from vestige.core.workspace import Workspace
from vestige.db.models import Case, Image, Perturbation
from vestige.evidence.derivatives import add_derivative, apply_chain, chain_name as probe_name, get_perturbations
from vestige.evidence.imagefile import ImageLimits, open_image, to_rgb
from vestige.evidence.ingest import Acquisition, Ingester

__all__ = ["CHANGES", "PROBES", "apply_chain", "change_of", "entry_change", "create_derivatives", "get_perturbations", "probe_name", "robustness_summary"]

#: The probes, each an operation chain as perturbation history records it.
PROBES: tuple[list[dict[str, Any]], ...] = (
    [{"op": "jpeg", "params": {"quality": 90}}],
    [{"op": "jpeg", "params": {"quality": 75}}],
    [{"op": "jpeg", "params": {"quality": 50}}],
    [{"op": "resize", "params": {"scale": 0.75}}],
    [{"op": "resize", "params": {"scale": 0.5}}],
    [{"op": "crop", "params": {"fraction": 0.9}}],
    [{"op": "blur", "params": {"radius": 1.0}}],
)


def create_derivatives(workspace: Workspace, session: Session, case: Case, images: Sequence[Image],
                       pm: VestigePluginManager, *, actor: str) -> dict[int, dict[str, Image]]:
    """Per original image id, ``{probe name: derivative}`` (made now, or found from an earlier run)."""
    available = get_perturbations(pm)
    existing: dict[tuple[int, str], int] = {}
    parent_ids = [image.id for image in images]
    if parent_ids:
        for row in session.execute(
            sa.select(Perturbation.parent_id, Perturbation.image_id, Perturbation.operations)
            .where(Perturbation.basis == "applied", Perturbation.parent_id.in_(parent_ids))
        ):
            existing[(row.parent_id, probe_name(row.operations))] = row.image_id
    cfg = workspace.config.ingest
    limits = ImageLimits.from_config(cfg)
    derived: dict[int, dict[str, Image]] = {}
    ingester: Ingester | None = None  # built on first use: it loads the near-duplicate index
    for parent in images:
        missing = [ops for ops in PROBES if (parent.id, probe_name(ops)) not in existing]
        decoded = None
        if missing:
            data = workspace.store.get(parent.blob_sha256)
            decoded = to_rgb(open_image(data, name=parent.original_filename, limits=limits))
        for ops in PROBES:
            name = probe_name(ops)
            if (parent.id, name) in existing:
                derived.setdefault(parent.id, {})[name] = session.get(Image, existing[(parent.id, name)])
                continue
            assert decoded is not None
            data = apply_chain(decoded.copy(), ops, available, seed=f"{parent.blob_sha256}:{name}".encode())
            if ingester is None:
                ingester = Ingester(workspace, session, case, Acquisition(source="", actor=actor))
            image = add_derivative(ingester, parent, data, ops, source=f"robustness probe {name} of image {parent.id}")
            existing[(parent.id, name)] = image.id
            derived.setdefault(parent.id, {})[name] = image
    return derived


#: How a verdict fares on a perturbed copy: the same conclusion; no conclusion any more (inconclusive, or
#: synthetic without the generator it named); or a contradicting one (another label or another generator).
CHANGES = ("holds", "weakens", "contradicts")


def change_of(original: Mapping[str, Any] | None, perturbed: Mapping[str, Any] | None) -> str | None:
    """One of :data:`CHANGES`, comparing conclusions (label and source) only, never the outcome's wording
    (``agree``, ``single``...); ``None`` when either side has no usable finding."""
    if original is None or perturbed is None or original.get("error") or perturbed.get("error"):
        return None
    label, source = original["label"], original.get("source")
    if perturbed["label"] == label and (label != "synthetic" or perturbed.get("source") == source):
        return "holds"
    if perturbed["label"] == "unknown" or (label == perturbed["label"] == "synthetic" and not perturbed.get("source")):
        return "weakens"
    return "contradicts"


def entry_change(entry: Mapping[str, Any] | None, original: Mapping[str, Any] | None = None) -> str | None:
    """The ``change`` of a robustness entry under a probe. Summaries from before it was recorded have
    ``holds`` only: it is then worked out again from ``original`` (the verdict on the original image)."""
    if not entry:
        return None
    if entry.get("change"):
        return str(entry["change"])
    if entry.get("holds") is None:
        return None
    if original is not None and original.get("label") and entry.get("label"):
        return change_of(original, entry)
    return "holds" if entry["holds"] else "contradicts"


def _holds(original: Mapping[str, Any] | None, perturbed: Mapping[str, Any] | None) -> dict[str, Any]:
    change = change_of(original, perturbed)
    return {"holds": None if change is None else change == "holds", "change": change}


def robustness_summary(probes: Mapping[int, Mapping[str, int]], findings: Mapping[int, Sequence[Mapping[str, Any]]],
                       merged: Mapping[int, Mapping[str, Any]]) -> dict[str, Any]:
    """Per original image: each detector's and the merged verdict's label under each probe, whether it holds,
    and how it changes (``change``, :func:`change_of`).

    ``probes`` maps an original image id to ``{probe name: derived image id}``;
    ``findings`` and ``merged`` are keyed by image id.
    """
    out: dict[str, Any] = {}
    for parent_id, by_probe in sorted(probes.items()):
        originals = {f["detector"]: f for f in findings.get(parent_id, [])}
        detectors: dict[str, Any] = {}
        for detector, original in sorted(originals.items()):
            under = {}
            for name, image_id in by_probe.items():
                perturbed = next((f for f in findings.get(image_id, []) if f["detector"] == detector), None)
                under[name] = {"image_id": image_id, "label": perturbed and perturbed["label"],
                               "source": perturbed and perturbed.get("source"), **_holds(original, perturbed)}
            detectors[detector] = {"label": original["label"], "source": original.get("source"), "under": under}
        base = merged.get(parent_id)
        merged_under = {
            name: {"image_id": image_id, "label": merged[image_id]["label"], "source": merged[image_id]["source"],
                   "outcome": merged[image_id]["outcome"], **_holds(base, merged[image_id])}
            for name, image_id in by_probe.items() if image_id in merged
        }
        out[str(parent_id)] = {
            "probes": dict(by_probe), "detectors": detectors,
            "merged": {"label": base and base["label"], "source": base and base["source"], "under": merged_under},
        }
    return out
