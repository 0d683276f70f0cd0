"""The HTML case report: one self-contained file (pictures inlined), readable offline and printable."""

from __future__ import annotations

import base64
import functools
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from vestige.reports import presentation
from vestige.reports.pictures import THUMBNAIL_MEDIA_TYPE, ReportPictures

TEMPLATES = Path(__file__).with_name("templates")


def score_bars_svg(scores: Mapping[str, Any], confidence: float | None, colour: str = "#1565c0") -> str:
    """Horizontal bars for a finding's highest scores (and its confidence), drawn as inline SVG."""
    bars = presentation.top_scores(scores)
    if confidence is not None:
        bars = [("confidence", float(confidence))] + bars
    if not bars:
        return ""
    values = [v for name, v in bars if name != "confidence"] or [0.0]
    row, label_w, bar_w = 18, 150, 220
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + bar_w + 70}" height="{row * len(bars) + 4}" '
             f'role="img" aria-label="scores">']
    for i, (name, value) in enumerate(bars):
        y = i * row + 2
        fraction = presentation.bar_fraction(value, [value] if name == "confidence" else values)
        fill = "#555" if name == "confidence" else colour
        parts.append(f'<text x="{label_w - 6}" y="{y + 12}" text-anchor="end" font-size="11">{escape(name[:24])}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w}" height="12" fill="#eee"/>')
        parts.append(f'<rect x="{label_w}" y="{y + 2}" width="{bar_w * fraction:.1f}" height="12" fill="{fill}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6}" y="{y + 12}" font-size="11">{value:.3f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _data_uri(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True, undefined=jinja2.StrictUndefined,
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters.update(short=presentation.short, number=presentation.number, json=presentation.compact_json,
                       operations=presentation.describe_operations)
    env.globals.update(EMPTY=presentation.EMPTY, OUTCOME_COLOURS=presentation.OUTCOME_COLOURS,
                       LABEL_COLOURS=presentation.LABEL_COLOURS, finding_table=presentation.finding_table,
                       robustness_table=presentation.robustness_table,
                       history_rows=presentation.history_rows)
    return env


def render_html(document: dict[str, Any], pictures: ReportPictures) -> str:
    """The report as an HTML page."""

    def picture_uri(sha256: str, media_type: str = "image/png") -> str | None:
        data = pictures.get(sha256)
        return None if data is None else _data_uri(data, media_type)

    def bars(finding: Mapping[str, Any]) -> Markup:
        colour = presentation.LABEL_COLOURS.get(finding["label"], "#1565c0")
        return Markup(score_bars_svg(finding["scores"], finding["confidence"], colour))

    def thumbnail_uri(sha256: str) -> str | None:
        data = pictures.thumbnail(sha256)
        return None if data is None else _data_uri(data, THUMBNAIL_MEDIA_TYPE)

    template = _environment().get_template("report.html.j2")
    return template.render(doc=document, picture_uri=picture_uri, thumbnail_uri=thumbnail_uri,
                           picture_problem=pictures.problem, bars=bars)
