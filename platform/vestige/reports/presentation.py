"""What the HTML and PDF renderers share: table rows, wording and colours, so both say the same thing."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from vestige.analysis.robustness import entry_change
from vestige.analysis.verdicts import stated_confidence
from vestige.plugin import reason_of

#: Shown where a section has nothing in it, so that an empty section says so instead of disappearing.
EMPTY = {
    "analysis": "No analysis has been run on this case: there are no findings to report.",
    "images": "The case holds no evidence images.",
    "findings": "No detector has reported on this image.",
    "merged": "No merged verdict: no detector has reported on this image.",
    "robustness": "No robustness probes were run on this image (vestige analyze --robustness runs them).",
    "pictures": "The detectors produced no pictures for this image.",
    "history": "No perturbation history is recorded for this image.",
    "near_duplicates": "No near-duplicates of this image are known.",
    "custody": "The custody log is empty.",
    "detectors": "No detector contributed to this report.",
    "models": "No model weights were used (every detector that ran works without weights).",
    "sections": "No plugin added a section.",
    "appendix": "No plugin section carries data.",
}

OUTCOME_COLOURS = {
    "agree": "#2e7d32",
    "single": "#1565c0",
    "conflict": "#c62828",
    "unknown-generator": "#ef6c00",
    "inconclusive": "#616161",
    "not analysed": "#9e9e9e",
}

LABEL_COLOURS = {"real": "#2e7d32", "synthetic": "#c62828", "unknown": "#757575"}

MAX_BARS = 8


def full_hash(sha256: str | None) -> str:
    """A hash as it is, never cut: a reader compares it character by character with the file's."""
    return sha256 or "-"


def number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def top_scores(scores: Mapping[str, Any], limit: int = MAX_BARS) -> list[tuple[str, float]]:
    """The highest numeric scores, largest first, at most ``limit``."""
    numeric = [(str(k), float(v)) for k, v in scores.items() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return sorted(numeric, key=lambda kv: (-kv[1], kv[0]))[:limit]


def bar_fraction(value: float, values: Sequence[float]) -> float:
    """Bar length in [0, 1]: probabilities as they are, other scores relative to the largest magnitude."""
    if all(0.0 <= v <= 1.0 for v in values):
        return max(0.0, min(1.0, value))
    largest = max((abs(v) for v in values), default=0.0)
    return abs(value) / largest if largest else 0.0


def describe_operations(operations: Sequence[Mapping[str, Any]]) -> str:
    """``jpeg(quality=75) → resize(scale=0.5)``."""
    parts = []
    for op in operations:
        params = ", ".join(f"{k}={v}" for k, v in sorted((op.get("params") or {}).items()))
        parts.append(f"{op.get('op', '?')}({params})")
    return " → ".join(parts) or "(no operations)"


_RELATIONS = {
    ("history", "applied"): "made by the lab from",
    ("history", "observed"): "near-duplicate of",
    ("history", "estimated"): "read from the file itself",
    ("derivatives", "applied"): "the lab made from it",
    ("derivatives", "observed"): "near-duplicate of it",
    ("derivatives", "estimated"): "estimated for",
}


def history_rows(perturbations: Mapping[str, Sequence[Mapping[str, Any]]]) -> list[list[str]]:
    """Perturbation history as rows: relation, basis, operations, the other image, when it was recorded."""
    rows = []
    for key, other in (("history", "parent"), ("derivatives", "image")):
        for p in perturbations[key]:
            ops = describe_operations(p["operations"]) if p["operations"] else "-"
            if p["distance"] is not None:
                ops += f" ({p['hash_kind'] or 'hash'} Hamming distance {p['distance']})"
            related = p.get(other)
            where = f"{related['case']} #{related['id']} {related['filename']}" if related else "-"
            rows.append([_RELATIONS.get((key, p["basis"]), key), p["basis"], ops, where, p["recorded_at"]])
    return rows


def _scalar(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def flat_items(value: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """A nested mapping as ``(dotted key, readable value)`` pairs, complete: nested mappings become dotted keys,
    lists of scalars comma-separated lists, lists of mappings numbered keys. No JSON, nothing cut."""
    out: list[tuple[str, str]] = []
    for key in sorted(value, key=str):
        item, name = value[key], f"{prefix}{key}"
        if isinstance(item, Mapping):
            out += flat_items(item, f"{name}.") if item else [(name, "-")]
        elif isinstance(item, (list, tuple)) and any(isinstance(v, Mapping) for v in item):
            for i, element in enumerate(item, 1):
                out += flat_items(element, f"{name}[{i}].") if isinstance(element, Mapping) else [(f"{name}[{i}]", _scalar(element))]
        elif isinstance(item, (list, tuple)):
            out.append((name, ", ".join(_scalar(v) for v in item) or "-"))
        else:
            out.append((name, _scalar(item)))
    return out


def readable(value: Mapping[str, Any] | None, separator: str = "; ") -> str:
    """``key: value; key.sub: value``: a mapping (evidence numbers, custody details) for people to read."""
    return separator.join(f"{k}: {v}" for k, v in flat_items(value or {})) or "-"


def pretty_json(value: Any) -> str:
    """The complete value as indented JSON, for the appendix only."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, indent=1, default=str)


def detector_versions(doc: Mapping[str, Any]) -> str:
    """The detectors and versions that made the report's findings, as they ran (``name version``, comma-separated).

    This, not the plugin package's version, says which code decided: a package
    can ship a detector whose own version moved on (metadata 0.2.0 in package 0.1.0).
    """
    used = sorted({(f["detector"], f["detector_version"]) for image in doc["images"] for f in image["findings"]})
    return ", ".join(f"{name} {version}" for name, version in used) or "-"


def finding_table(findings: Sequence[Mapping[str, Any]]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """The detectors side by side: column headers, then (row name, one cell per detector)."""
    headers = [f"{f['detector']} {f['detector_version']}" for f in findings]

    def cells(fn: Any) -> list[str]:
        return [fn(f) for f in findings]

    rows = [
        ("kind", cells(lambda f: f["kind"])),
        ("label", cells(lambda f: f["label"])),
        ("source", cells(lambda f: f["source"] or "-")),
        ("confidence in outcome", cells(lambda f: number(stated_confidence(f)))),
        ("top scores", cells(lambda f: ", ".join(f"{k} {v:.3f}" for k, v in top_scores(f["scores"], 3)) or "-")),
        ("reason", cells(lambda f: reason_of(f["evidence"]) or "-")),
        ("evidence", cells(lambda f: readable(f["evidence"], "\n"))),
        ("model SHA-256", cells(lambda f: full_hash(f["model_sha256"]))),
        ("device", cells(lambda f: f"{f['device']} {f['precision']}")),
        ("run time", cells(lambda f: "-" if f["runtime_ms"] is None else f"{f['runtime_ms']:.1f} ms")),
        ("error", cells(lambda f: f["error"] or "-")),
    ]
    return headers, rows


#: What a robustness cell says after the verdict on the copy (see vestige.analysis.robustness.change_of).
CHANGE_WORDS = {"holds": " (holds)", "weakens": " (no longer concludes)", "contradicts": " (CONTRADICTS)"}


def _under(entry: Mapping[str, Any] | None, original: Mapping[str, Any] | None = None) -> str:
    if not entry:
        return "-"
    said = " ".join(str(entry[k]) for k in ("label", "source") if entry.get(k)) or "no finding"
    change = entry_change(entry, original)
    return said + ("" if change is None else CHANGE_WORDS[change])


def robustness_table(robustness: Mapping[str, Any] | None) -> tuple[list[str], list[list[str]]]:
    """Robustness as a table: one row per probe; the merged verdict and each detector, and whether each holds.

    ``robustness`` is one image's entry of ``Analysis.summary["robustness"]``:
    ``{"probes": {name: image id}, "merged": {"label", "source", "under": {name: {...}}},
    "detectors": {name: {"label", "source", "under": {name: {...}}}}}``. Empty when there were no probes.
    """
    if not robustness or not robustness.get("probes"):
        return [], []
    merged = robustness.get("merged") or {}
    detectors = robustness.get("detectors") or {}
    headers = ["probe", "merged: " + (_under(merged).replace(" (holds)", "") if merged.get("label") else "-")]
    headers += [f"{name}: {_under(d).replace(' (holds)', '')}" for name, d in sorted(detectors.items())]
    rows = []
    for probe in sorted(robustness["probes"]):
        row = [probe, _under((merged.get("under") or {}).get(probe), merged)]
        row += [_under((d.get("under") or {}).get(probe), d) for _, d in sorted(detectors.items())]
        rows.append(row)
    return headers, rows
