"""The case report's "Provenance metadata" section: one row per image the metadata detector saw."""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from vestige.plugin import ReportSection

TITLE = "Provenance metadata"
DETECTOR_NAME = "metadata"
#: Signals listed per image in the section; the verdict keeps them all.
SIGNALS_SHOWN = 5
_LIMITS = (
    "Metadata is a claim the file makes about itself: text chunks, XMP and EXIF are forged or stripped in seconds, "
    "and the Stable Diffusion watermarks are forgeable and erased by resizing or 4:2:0 JPEG. Only a C2PA manifest "
    "signed by a signer the lab trusts can make this detector answer real; absence of every signal proves nothing."
)


def _field(verdict: Any, name: str) -> Any:
    """A verdict's field, whether the verdict is a database row, a finding or a mapping."""
    if isinstance(verdict, Mapping):
        return verdict.get(name)
    return getattr(verdict, name, None)


def _row(verdict: Any) -> dict[str, Any]:
    evidence = _field(verdict, "evidence") or {}
    evidence = evidence if isinstance(evidence, Mapping) else {}
    credentials = evidence.get("content_credentials") or {}
    marks = (evidence.get("watermarks") or {}).get("marks") or []
    present_marks = [f"{m.get('name')} {m.get('matching_bits')}/{m.get('bits')}" for m in marks if m.get("present")]
    camera = evidence.get("camera") or {}
    thumbnail = camera.get("thumbnail") or {}
    return {
        "image": _field(verdict, "image_id") if _field(verdict, "image_id") is not None else _field(verdict, "file"),
        "label": _field(verdict, "label"),
        "source": _field(verdict, "source"),
        "signals": list(evidence.get("signals") or [])[:SIGNALS_SHOWN],
        "c2pa": credentials.get("validation_state") if credentials.get("present") else None,
        "c2pa_signer": (credentials.get("signer") or {}).get("common_name"),
        "watermarks": present_marks,
        "camera": " ".join(filter(None, (camera.get("camera_make"), camera.get("camera_model")))) or None,
        "thumbnail_similarity": thumbnail.get("similarity"),
        "why_unknown": evidence.get("why_unknown"),
        "error": _field(verdict, "error"),
    }


def _cell(value: Any) -> str:
    if value is None or value == []:
        return "—"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return "<br>".join(html.escape(str(v)) for v in value)
    return html.escape(str(value))


_COLUMNS = (("image", "image"), ("label", "label"), ("source", "source"), ("signals", "signals"), ("C2PA", "c2pa"),
            ("signer", "c2pa_signer"), ("watermarks", "watermarks"), ("camera", "camera"),
            ("thumbnail", "thumbnail_similarity"), ("note", "note"))


def _html(rows: list[dict[str, Any]], counts: Mapping[str, int]) -> str:
    summary = ", ".join(f"{counts[label]} {label}" for label in ("synthetic", "real", "unknown") if counts.get(label))
    head = "".join(f"<th>{title}</th>" for title, _ in _COLUMNS)
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(row['error'] or row['why_unknown'] if key == 'note' else row[key])}</td>"
                         for _, key in _COLUMNS) + "</tr>"
        for row in rows
    )
    return (
        f'<section class="vestige-metadata"><p>{html.escape(summary)}.</p>'
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
        f'<p class="limitations">{html.escape(_LIMITS)}</p></section>'
    )


def metadata_report_section(verdicts: Iterable[Any]) -> ReportSection | None:
    """The section summarising the metadata detector's verdicts, or ``None`` when it gave none."""
    rows = [_row(v) for v in verdicts if not isinstance(v, (str, bytes)) and _field(v, "detector") == DETECTOR_NAME]
    if not rows:
        return None
    counts = Counter(row["label"] for row in rows)
    data = {"detector": DETECTOR_NAME, "counts": dict(sorted(counts.items())), "images": rows, "limitations": _LIMITS}
    return ReportSection(title=TITLE, html=_html(rows, counts), data=data)
