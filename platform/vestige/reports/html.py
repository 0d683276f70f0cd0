"""The HTML case report: one self-contained file (pictures inlined), readable offline and printable."""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup

from vestige.analysis.verdicts import stated_confidence
from vestige.reports import presentation
from vestige.reports.pictures import THUMBNAIL_MEDIA_TYPE, ReportPictures

TEMPLATES = Path(__file__).with_name("templates")


def score_bars_svg(scores: Mapping[str, Any], confidence: float | None, colour: str = "#1565c0") -> str:
    """Horizontal bars for a finding's highest scores (and its confidence in the stated outcome), drawn as inline
    SVG that scales down to its column; labels are sized to the longest name, never cut."""
    bars = presentation.top_scores(scores)
    if confidence is not None:
        bars = [("confidence", float(confidence))] + bars
    if not bars:
        return ""
    values = [v for name, v in bars if name != "confidence"] or [0.0]
    row, bar_w = 18, 160
    label_w = 12 + 6.6 * max(len(name) for name, _ in bars)  # 11 px text: about 6.6 px per character
    width = label_w + bar_w + 52
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {row * len(bars) + 4}" '
             f'width="{width:.0f}" style="max-width: 100%; height: auto" role="img" aria-label="scores">']
    for i, (name, value) in enumerate(bars):
        y = i * row + 2
        fraction = presentation.bar_fraction(value, [value] if name == "confidence" else values)
        fill = "#555" if name == "confidence" else colour
        parts.append(f'<text x="{label_w - 6:.0f}" y="{y + 12}" text-anchor="end" font-size="11">{escape(name)}</text>')
        parts.append(f'<rect x="{label_w:.0f}" y="{y + 2}" width="{bar_w}" height="12" fill="#eee"/>')
        parts.append(f'<rect x="{label_w:.0f}" y="{y + 2}" width="{bar_w * fraction:.1f}" height="12" fill="{fill}"/>')
        parts.append(f'<text x="{label_w + bar_w + 6:.0f}" y="{y + 12}" font-size="11">{value:.3f}</text>')
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
    env.filters.update(hash=presentation.full_hash, number=presentation.number, readable=presentation.readable,
                       pretty_json=presentation.pretty_json, operations=presentation.describe_operations,
                       config_value=lambda value: json.dumps(value, ensure_ascii=False))
    env.globals.update(EMPTY=presentation.EMPTY, OUTCOME_COLOURS=presentation.OUTCOME_COLOURS,
                       LABEL_COLOURS=presentation.LABEL_COLOURS, finding_table=presentation.finding_table,
                       robustness_table=presentation.robustness_table,
                       history_rows=presentation.history_rows, detector_versions=presentation.detector_versions)
    return env


def render_html(document: dict[str, Any], pictures: ReportPictures) -> str:
    """The report as an HTML page."""

    def picture_uri(sha256: str, media_type: str = "image/png") -> str | None:
        data = pictures.get(sha256)
        return None if data is None else _data_uri(data, pictures.media_type(sha256, media_type))

    def bars(finding: Mapping[str, Any]) -> Markup:
        colour = presentation.LABEL_COLOURS.get(finding["label"], "#1565c0")
        return Markup(score_bars_svg(finding["scores"], stated_confidence(finding), colour))

    def thumbnail_uri(sha256: str) -> str | None:
        data = pictures.thumbnail(sha256)
        return None if data is None else _data_uri(data, THUMBNAIL_MEDIA_TYPE)

    template = _environment().get_template("report.html.j2")
    return template.render(doc=document, picture_uri=picture_uri, thumbnail_uri=thumbnail_uri,
                           picture_problem=pictures.problem, bars=bars)
