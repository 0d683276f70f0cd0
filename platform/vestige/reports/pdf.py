"""The PDF case report, drawn with reportlab: the same content as the HTML, in print form."""

from __future__ import annotations

import html
import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reportlab.graphics.shapes import Drawing, Rect, String
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Image, PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from vestige.reports import presentation
from vestige.reports.pictures import ReportPictures

#: DejaVu covers far more scripts than the PDF core fonts (file names and actors are often not Latin-1).
_FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))
PAGE_WIDTH = A4[0] - 30 * mm


def _fonts() -> tuple[str, str, str]:
    """Regular, bold and monospace font names, registering DejaVu when the system has it."""
    for folder in _FONT_DIRS:
        files = {"VestigeSans": "DejaVuSans.ttf", "VestigeSans-Bold": "DejaVuSans-Bold.ttf", "VestigeMono": "DejaVuSansMono.ttf"}
        if all((folder / f).is_file() for f in files.values()):
            for name, file in files.items():
                if name not in pdfmetrics.getRegisteredFontNames():
                    pdfmetrics.registerFont(TTFont(name, str(folder / file)))
            return "VestigeSans", "VestigeSans-Bold", "VestigeMono"
    return "Helvetica", "Helvetica-Bold", "Courier"


class _Styles:
    def __init__(self) -> None:
        regular, bold, mono = _fonts()
        base = getSampleStyleSheet()
        self.mono = mono
        self.title = ParagraphStyle("title", parent=base["Title"], fontName=bold, fontSize=18, alignment=TA_LEFT)
        self.h2 = ParagraphStyle("h2", parent=base["Heading2"], fontName=bold, fontSize=13, spaceBefore=10,
                                 keepWithNext=1)
        self.h3 = ParagraphStyle("h3", parent=base["Heading3"], fontName=bold, fontSize=10.5, spaceBefore=6,
                                 keepWithNext=1)
        self.body = ParagraphStyle("body", parent=base["BodyText"], fontName=regular, fontSize=8.5, leading=11)
        self.small = ParagraphStyle("small", parent=self.body, fontSize=7, leading=8.6)
        self.code = ParagraphStyle("code", parent=self.small, fontName=mono, fontSize=6.5, leading=8)
        self.empty = ParagraphStyle("empty", parent=self.body, textColor=colors.HexColor("#666666"), fontName=regular)
        self.bad = ParagraphStyle("bad", parent=self.body, textColor=colors.HexColor("#c62828"), fontName=bold)
        self.good = ParagraphStyle("good", parent=self.body, textColor=colors.HexColor("#2e7d32"), fontName=bold)


def _text(value: Any) -> str:
    return html.escape(str(value), quote=False)


def _plain(markup: str) -> str:
    """A plugin section's HTML as plain text (reportlab understands only a few tags)."""
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", markup))).strip()


def _table(rows: Sequence[Sequence[Any]], style: ParagraphStyle, widths: Sequence[float] | None = None,
           header: bool = True) -> Table:
    cells = [[c if not isinstance(c, str) else Paragraph(_text(c), style) for c in row] for row in rows]
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT")
    commands = [("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#bbbbbb")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")))
    table.setStyle(TableStyle(commands))
    return table


def score_bars_drawing(scores: Mapping[str, Any], confidence: float | None, colour: str, width: float) -> Drawing | None:
    """A finding's highest scores (and its confidence) as horizontal bars."""
    bars = presentation.top_scores(scores)
    if confidence is not None:
        bars = [("confidence", float(confidence))] + bars
    if not bars:
        return None
    values = [v for name, v in bars if name != "confidence"] or [0.0]
    row, label_w = 11, min(70.0, width * 0.4)
    bar_w = max(20.0, width - label_w - 30)
    drawing = Drawing(width, row * len(bars) + 2)
    for i, (name, value) in enumerate(bars):
        y = drawing.height - (i + 1) * row
        fraction = presentation.bar_fraction(value, [value] if name == "confidence" else values)
        drawing.add(String(label_w - 3, y + 2, name[:16], fontSize=6, textAnchor="end"))
        drawing.add(Rect(label_w, y + 1, bar_w, 7, fillColor=colors.HexColor("#eeeeee"), strokeColor=None))
        fill = colors.HexColor("#555555" if name == "confidence" else colour)
        drawing.add(Rect(label_w, y + 1, bar_w * fraction, 7, fillColor=fill, strokeColor=None))
        drawing.add(String(label_w + bar_w + 2, y + 2, f"{value:.3f}", fontSize=6))
    return drawing


def _picture(data: bytes | None, max_w: float, max_h: float) -> Image | None:
    if data is None:
        return None
    from PIL import Image as PILImage

    with PILImage.open(io.BytesIO(data)) as probe:
        w, h = probe.size
    scale = min(max_w / w, max_h / h, 1.0 if w > 200 else 2.0)
    return Image(io.BytesIO(data), width=w * scale, height=h * scale)


def _empty(story: list[Any], s: _Styles, key: str) -> None:
    story.append(Paragraph(_text(presentation.EMPTY[key]), s.empty))


def _image_story(image: dict[str, Any], pictures: ReportPictures, s: _Styles) -> list[Any]:
    story: list[Any] = [PageBreak(), Paragraph(_text(f"Image {image['id']}: {image['filename']}"), s.h2)]
    facts = [
        ["SHA-256", image["sha256"]],
        ["format", f"{image['format']} ({image['media_type']}), {image['width']}×{image['height']}, {image['size']} bytes"],
        ["acquired", f"{image['acquired_at']} by {image['acquired_by']}" + (f", from {image['source']}" if image["source"] else "")],
        ["occurrences", "; ".join(o["filename"] + (f" in {o['container']}" if o["container"] else "") for o in image["occurrences"])],
        ["hashes", "  ".join(f"{k} {v}" for k, v in image["hashes"].items())],
    ]
    thumb = _picture(pictures.thumbnail(image["sha256"]), 45 * mm, 45 * mm)
    facts_table = _table(facts, s.small, [22 * mm, PAGE_WIDTH - 75 * mm], header=False)
    left = thumb or Paragraph(_text(pictures.problem(image["sha256"]) or ""), s.bad)
    story.append(Table([[left, facts_table]], colWidths=[50 * mm, PAGE_WIDTH - 50 * mm], hAlign="LEFT",
                       style=[("VALIGN", (0, 0), (-1, -1), "TOP")]))

    story.append(Paragraph("Merged verdict", s.h3))
    merged = image["merged"]
    if merged:
        colour = presentation.OUTCOME_COLOURS.get(merged["outcome"], "#777777")
        stated = merged["label"] + (f": {merged['source']}" if merged["source"] else "")
        story.append(Paragraph(f'<b>{_text(stated)}</b> &nbsp; <font color="{colour}"><b>{_text(merged["outcome"])}</b></font>', s.body))
        story.append(Paragraph(_text(merged["rule"]), s.body))
    else:
        _empty(story, s, "merged")

    story.append(Paragraph("Detectors side by side", s.h3))
    findings = image["findings"]
    if findings:
        headers, rows = presentation.finding_table(findings)
        roles = (merged or {}).get("detectors", {})
        headers = [h + (f" (role: {roles[f['detector']]['role']})" if f["detector"] in roles else "") for h, f in zip(headers, findings)]
        column = (PAGE_WIDTH - 24 * mm) / len(findings)
        bar_row = ["scores"] + [
            score_bars_drawing(f["scores"], f["confidence"], presentation.LABEL_COLOURS.get(f["label"], "#1565c0"), column - 6) or "-"
            for f in findings
        ]
        story.append(_table([[""] + headers] + [[name] + cells for name, cells in rows] + [bar_row], s.small,
                            [24 * mm] + [column] * len(findings)))
    else:
        _empty(story, s, "findings")

    story.append(Paragraph("Pictures", s.h3))
    figures = []
    for finding in findings:
        for p in finding["pictures"]:
            shown = _picture(pictures.get(p["sha256"]), 45 * mm, 45 * mm) if p["media_type"] in ("image/png", "image/jpeg") else None
            caption = Paragraph(_text(f"{finding['detector']}: {p['name']}. {p['caption']} ({p['sha256'][:12]}…)"), s.small)
            figures.append([shown or Paragraph(_text(pictures.problem(p["sha256"]) or p["media_type"]), s.bad), caption])
    if figures:
        per_row = 3
        figures += [""] * (-len(figures) % per_row)
        grid = [figures[i:i + per_row] for i in range(0, len(figures), per_row)]
        story.append(Table(grid, colWidths=[PAGE_WIDTH / per_row] * per_row, hAlign="LEFT",
                           style=[("VALIGN", (0, 0), (-1, -1), "TOP")]))
    else:
        _empty(story, s, "pictures")

    story.append(Paragraph("Robustness", s.h3))
    headers, robust = presentation.robustness_table(image["robustness"])
    if robust:
        robust = [[Paragraph(f'<font color="#c62828">{_text(c)}</font>', s.small) if "CONTRADICTS" in c else c for c in row]
                  for row in robust]
        story.append(_table([headers] + robust, s.small, [28 * mm] + [(PAGE_WIDTH - 28 * mm) / (len(headers) - 1)] * (len(headers) - 1)))
    else:
        _empty(story, s, "robustness")

    story.append(Paragraph("Perturbation history", s.h3))
    history = [["relation", "basis", "operations", "other image"]] + [row[:4] for row in presentation.history_rows(image["perturbations"])]
    if len(history) > 1:
        story.append(_table(history, s.small, [32 * mm, 18 * mm, 70 * mm, PAGE_WIDTH - 120 * mm]))
    else:
        _empty(story, s, "history")

    story.append(Paragraph("Near-duplicates", s.h3))
    if image["near_duplicates"]:
        rows = [["image", "case", "file", "SHA-256", "distance"]] + [
            [str(n["id"]), n["case"], n["filename"], presentation.short(n["sha256"]), f"{n['hash_kind']} {n['distance']}"]
            for n in image["near_duplicates"]
        ]
        story.append(_table(rows, s.small))
    else:
        _empty(story, s, "near_duplicates")
    return story


def _case_story(doc: dict[str, Any], s: _Styles) -> list[Any]:
    story: list[Any] = [PageBreak(), Paragraph("Custody log", s.h2)]
    custody = doc["custody"]
    if custody["intact"]:
        story.append(Paragraph(_text(f"Chain verified when this report was made: {custody['events']} events intact, "
                                     f"head {presentation.short(custody['head'], 16)}"), s.good))
    else:
        story.append(Paragraph(_text(f"Chain BROKEN when this report was made: {custody['problem']}"), s.bad))
    if custody["log"]:
        rows = [["#", "time (UTC)", "actor", "action", "details", "hash"]] + [
            [str(e["seq"]), e["at"], e["actor"], e["action"], presentation.compact_json(e["details"], 160), presentation.short(e["hash"], 10)]
            for e in custody["log"]
        ]
        story.append(_table(rows, s.small, [8 * mm, 37 * mm, 24 * mm, 24 * mm, PAGE_WIDTH - 114 * mm, 21 * mm]))
    else:
        _empty(story, s, "custody")

    story += [Paragraph("Methods and limitations", s.h2), Paragraph(_text(doc["methods"]["merge_rules"]), s.body)]
    if doc["methods"]["detectors"]:
        rows = [["detector", "version", "kind", "what it looks for"]] + [
            [d["name"], d["version"] or "-", d["kind"] or "-", d["description"]] for d in doc["methods"]["detectors"]
        ]
        story.append(_table(rows, s.small, [30 * mm, 16 * mm, 20 * mm, PAGE_WIDTH - 66 * mm]))
    else:
        _empty(story, s, "detectors")
    story.append(Paragraph("Limitations", s.h3))
    story += [Paragraph("• " + _text(item), s.body) for item in doc["limitations"]]

    repro, env = doc["reproducibility"], doc["reproducibility"]["environment"]
    story.append(Paragraph("Reproducibility", s.h2))
    plugins = ", ".join(f"{p['name']} {p['version']}" + (f" ({p['error']})" if p.get("error") else "") for p in repro["plugins"])
    story.append(_table([
        ["Vestige", repro["vestige"]], ["plugins", plugins or "-"],
        ["Python", f"{env['python']} ({env.get('implementation', '')}) on {env['platform']}"],
        ["numpy / torch", f"{env.get('numpy') or '-'} / {env['torch'] or 'not installed'}"],
        ["CUDA / GPUs", f"{env['cuda'] or 'none'} / {', '.join(env['gpus']) or 'none'}"],
    ], s.small, [30 * mm, PAGE_WIDTH - 30 * mm], header=False))
    story.append(Paragraph("Model weights", s.h3))
    if repro["models"]:
        rows = [["detector", "version", "file", "SHA-256"]] + [
            [m["detector"], m["detector_version"], (m["filename"] or "-") + (" (under-trained: its time budget ended training)"
                                                               if m.get("under_trained") else ""), m["sha256"]] for m in repro["models"]
        ]
        story.append(_table(rows, s.code, [28 * mm, 16 * mm, 36 * mm, PAGE_WIDTH - 80 * mm]))
    else:
        _empty(story, s, "models")
    story.append(Paragraph("Configuration", s.h3))
    config_lines = []
    for section, values in repro["configuration"].items():
        config_lines.append(f"[{section}]")
        config_lines += [f"{k} = {presentation.compact_json(v)}" for k, v in values.items()]
    story.append(Paragraph("<br/>".join(_text(line) for line in config_lines), s.code))

    story.append(Paragraph("Plugin sections", s.h2))
    if doc["sections"]:
        for section in doc["sections"]:
            story.append(Paragraph(_text(f"{section['title']} ({section['plugin']})"), s.h3))
            if section["error"]:
                story.append(Paragraph(_text(section["error"]), s.bad))
                continue
            story.append(Paragraph(_text(_plain(section["html"])) or "-", s.body))
            if section["data"]:
                story.append(Paragraph(_text(presentation.compact_json(section["data"], 2000)), s.code))
    else:
        _empty(story, s, "sections")
    return story


def render_pdf(doc: dict[str, Any], pictures: ReportPictures) -> bytes:
    """The report as PDF bytes (A4)."""
    s = _Styles()
    case = doc["case"]
    story: list[Any] = [
        Paragraph(_text(f"Case {case['reference']}: {case['title']}"), s.title),
        Paragraph(_text(f"Evidence report generated {doc['generated_at']} by {doc['generated_by']} with Vestige "
                        f"{doc['reproducibility']['vestige']}; case opened {case['created_at']} by {case['created_by']}; "
                        f"status {case['status']}; report format {doc['format']} v{doc['version']}."), s.body),
        Paragraph("Summary", s.h2),
    ]
    analysis = doc["analysis"]
    if analysis:
        story.append(Paragraph(_text(f"Analysis {analysis['id']} ({analysis['status']}), requested by {analysis['requested_by']} "
                                     f"on {analysis['created_at']}. Detectors: {', '.join(analysis['detectors']) or 'all installed'}."), s.body))
    else:
        _empty(story, s, "analysis")
    summary = doc["summary"]
    if summary["rows"]:
        counts = ", ".join(f"{k}: {v}" for k, v in summary["outcomes"].items())
        story += [Paragraph(_text(f"{summary['images']} evidence images. Outcomes: {counts}."), s.body), Spacer(1, 3)]
        rows = [["image", "file", "SHA-256", "label", "source", "outcome", "detectors"]] + [
            [str(r["image_id"]), r["filename"], presentation.short(r["sha256"]), r["label"] or "-", r["source"] or "-",
             r["outcome"], str(r["detectors"])]
            for r in summary["rows"]
        ]
        story.append(_table(rows, s.small, [12 * mm, 50 * mm, 26 * mm, 18 * mm, 28 * mm, 26 * mm, PAGE_WIDTH - 160 * mm]))
    else:
        _empty(story, s, "images")
    for image in doc["images"]:
        story += _image_story(image, pictures, s)
    story += _case_story(doc, s)

    out = io.BytesIO()
    footer = f"Vestige evidence report · case {case['reference']} · generated {doc['generated_at']}"

    def on_page(canvas: Any, template: Any) -> None:
        canvas.saveState()
        canvas.setFont(s.body.fontName, 7)
        canvas.drawString(15 * mm, 10 * mm, footer)
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"page {template.page}")
        canvas.restoreState()

    template = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                                 bottomMargin=16 * mm, title=f"Case {case['reference']}: evidence report",
                                 author=doc["generated_by"], creator=f"Vestige {doc['reproducibility']['vestige']}",
                                 invariant=1)  # no wall-clock dates or random ids: the bytes follow from the document
    template.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return out.getvalue()
