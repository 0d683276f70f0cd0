"""The PDF case report, drawn with reportlab: the same content as the HTML, in print form."""

from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from html.parser import HTMLParser
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

from vestige.analysis.verdicts import stated_confidence
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


class _Blocks(HTMLParser):
    """A plugin section's HTML as paragraphs and tables (reportlab understands only a few inline tags)."""

    BREAKS = {"p", "div", "section", "li", "h1", "h2", "h3", "h4", "br", "ul", "ol"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, Any]] = []
        self.text: list[str] = []
        self.table: list[list[str]] | None = None
        self.cell: list[str] | None = None

    def _flush(self) -> None:
        text = re.sub(r"\s+", " ", "".join(self.text)).strip()
        if text:
            self.blocks.append(("p", text))
        self.text = []

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "table":
            self._flush()
            self.table = []
        elif tag == "tr" and self.table is not None:
            self.table.append([])
        elif tag in ("td", "th") and self.table is not None:
            self.cell = []
        elif tag in self.BREAKS and self.cell is None:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.table is not None and self.cell is not None:
            if not self.table:
                self.table.append([])
            self.table[-1].append(re.sub(r"\s+", " ", "".join(self.cell)).strip())
            self.cell = None
        elif tag == "table" and self.table is not None:
            rows = [row for row in self.table if row]
            if rows:
                self.blocks.append(("table", rows))
            self.table = None
        elif tag in self.BREAKS and self.cell is None:
            self._flush()

    def handle_data(self, data: str) -> None:
        (self.cell if self.cell is not None else self.text).append(data)


def _html_story(markup: str, s: _Styles) -> list[Any]:
    parser = _Blocks()
    parser.feed(markup)
    parser.close()
    parser._flush()
    story: list[Any] = []
    for kind, content in parser.blocks:
        if kind == "p":
            story.append(Paragraph(_text(content), s.body))
        else:
            width = max(len(row) for row in content)
            rows = [row + [""] * (width - len(row)) for row in content]
            story.append(_table(rows, s.small, [PAGE_WIDTH / width] * width))
    return story


def _table(rows: Sequence[Sequence[Any]], style: ParagraphStyle, widths: Sequence[float] | None = None,
           header: bool = True) -> Table:
    cells = [[c if not isinstance(c, str) else Paragraph(_text(c).replace("\n", "<br/>"), style) for c in row] for row in rows]
    # splitInRow: a tall row (a detector's evidence) continues on the next page instead of leaving this one blank
    table = Table(cells, colWidths=widths, repeatRows=1 if header else 0, hAlign="LEFT", splitInRow=1)
    commands = [("GRID", (0, 0), (-1, -1), 0.3, colors.HexColor("#bbbbbb")), ("VALIGN", (0, 0), (-1, -1), "TOP"),
                ("LEFTPADDING", (0, 0), (-1, -1), 3), ("RIGHTPADDING", (0, 0), (-1, -1), 3)]
    if header:
        commands.append(("BACKGROUND", (0, 0), (-1, 0), colors.HexColor("#eeeeee")))
    table.setStyle(TableStyle(commands))
    return table


def score_bars_drawing(scores: Mapping[str, Any], confidence: float | None, colour: str, width: float,
                       font: str = "Helvetica") -> Drawing | None:
    """A finding's highest scores (and its confidence in the stated outcome) as horizontal bars.

    The labels get the width their longest name needs (up to half the column,
    in a smaller font if that is what it takes), so no name is clipped."""
    bars = presentation.top_scores(scores)
    if confidence is not None:
        bars = [("confidence", float(confidence))] + bars
    if not bars:
        return None
    values = [v for name, v in bars if name != "confidence"] or [0.0]
    size = 6.0
    longest = max(pdfmetrics.stringWidth(name, font, size) for name, _ in bars)
    if longest > width * 0.5:
        size = max(3.5, size * width * 0.5 / longest)
        longest = max(pdfmetrics.stringWidth(name, font, size) for name, _ in bars)
    row, label_w = 11, longest + 4
    bar_w = max(10.0, width - label_w - 22)
    drawing = Drawing(width, row * len(bars) + 2)
    for i, (name, value) in enumerate(bars):
        y = drawing.height - (i + 1) * row
        fraction = presentation.bar_fraction(value, [value] if name == "confidence" else values)
        drawing.add(String(label_w - 3, y + 2, name, fontName=font, fontSize=size, textAnchor="end"))
        drawing.add(Rect(label_w, y + 1, bar_w, 7, fillColor=colors.HexColor("#eeeeee"), strokeColor=None))
        fill = colors.HexColor("#555555" if name == "confidence" else colour)
        drawing.add(Rect(label_w, y + 1, bar_w * fraction, 7, fillColor=fill, strokeColor=None))
        drawing.add(String(label_w + bar_w + 2, y + 2, f"{value:.3f}", fontName=font, fontSize=6))
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
        if merged.get("explanation"):
            story.append(Paragraph(_text(merged["explanation"]), s.body))
        if merged.get("confidence") is not None:
            story.append(Paragraph(_text(f"Confidence {merged['confidence']:.2f}: the weakest calibrated confidence "
                                         "among the detectors that decided it."), s.body))
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
            score_bars_drawing(f["scores"], stated_confidence(f), presentation.LABEL_COLOURS.get(f["label"], "#1565c0"),
                               column - 6, s.body.fontName) or "-"
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
            shown = _picture(pictures.get(p["sha256"]), 45 * mm, 45 * mm) if pictures.media_type(p["sha256"], p["media_type"]) in ("image/png", "image/jpeg") else None
            caption = Paragraph(_text(f"{finding['detector']}: {p['name']}. {p['caption']} (SHA-256 {p['sha256']})"), s.small)
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
            [str(n["id"]), n["case"], n["filename"], presentation.full_hash(n["sha256"]), f"{n['hash_kind']} {n['distance']}"]
            for n in image["near_duplicates"]
        ]
        story.append(_table(rows, s.small, [12 * mm, 30 * mm, PAGE_WIDTH - 118 * mm, 56 * mm, 20 * mm]))
    else:
        _empty(story, s, "near_duplicates")
    return story


def _case_story(doc: dict[str, Any], s: _Styles) -> list[Any]:
    story: list[Any] = [PageBreak(), Paragraph("Custody log", s.h2)]
    custody = doc["custody"]
    if custody["intact"]:
        story.append(Paragraph(_text(f"Chain verified when this report was made: {custody['events']} events intact, "
                                     f"head {presentation.full_hash(custody['head'])}"), s.good))
    else:
        story.append(Paragraph(_text(f"Chain BROKEN when this report was made: {custody['problem']}"), s.bad))
    if custody["log"]:
        rows = [["#", "time (UTC)", "actor", "action", "details", "hash"]] + [
            [str(e["seq"]), e["at"], e["actor"], e["action"], presentation.readable(e["details"]), e["hash"]]
            for e in custody["log"]
        ]
        story.append(_table(rows, s.small, [8 * mm, 30 * mm, 22 * mm, 24 * mm, PAGE_WIDTH - 116 * mm, 32 * mm]))
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
        ["Vestige", repro["vestige"]], ["detectors (as they ran)", presentation.detector_versions(doc)],
        ["plugin packages", plugins or "-"],
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
        config_lines += [f"{k} = {json.dumps(v, ensure_ascii=False)}" for k, v in values.items()]
    story.append(Paragraph("<br/>".join(_text(line) for line in config_lines), s.code))

    story.append(Paragraph("Plugin sections", s.h2))
    if doc["sections"]:
        for section in doc["sections"]:
            story.append(Paragraph(_text(f"{section['title']} ({section['plugin']})"), s.h3))
            if section["error"]:
                story.append(Paragraph(_text(section["error"]), s.bad))
                continue
            story += _html_story(section["html"], s) or [Paragraph("-", s.body)]
            if section["data"]:
                story.append(Paragraph(_text("Its data, complete, is in the appendix."), s.empty))
    else:
        _empty(story, s, "sections")

    story.append(Paragraph("Appendix: plugin data", s.h2))
    with_data = [section for section in doc["sections"] if section["data"]]
    for section in with_data:
        story.append(Paragraph(_text(f"{section['title']} ({section['plugin']})"), s.h3))
        lines = presentation.pretty_json(section["data"]).splitlines()
        for start in range(0, len(lines), 60):  # a paragraph per 60 lines, so pages can break between them
            story.append(Paragraph("<br/>".join(_text(line).replace(" ", "&nbsp;", len(line) - len(line.lstrip()))
                                                for line in lines[start:start + 60]), s.code))
    if not with_data:
        _empty(story, s, "appendix")
    return story


def pdf_date(generated_at: str) -> str:
    """A PDF date (``D:YYYYMMDDHHmmSS+00'00'``) for the report's UTC ``generated_at`` (``2026-05-01T09:30:00Z``)."""
    when = dt.datetime.strptime(generated_at, "%Y-%m-%dT%H:%M:%SZ")
    return when.strftime("D:%Y%m%d%H%M%S+00'00'")


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
            [str(r["image_id"]), r["filename"], presentation.full_hash(r["sha256"]), r["label"] or "-", r["source"] or "-",
             r["outcome"], str(r["detectors"])]
            for r in summary["rows"]
        ]
        story.append(_table(rows, s.small, [10 * mm, 44 * mm, 40 * mm, 16 * mm, 26 * mm, 24 * mm, PAGE_WIDTH - 160 * mm]))
    else:
        _empty(story, s, "images")
    for image in doc["images"]:
        story += _image_story(image, pictures, s)
    story += _case_story(doc, s)

    out = io.BytesIO()
    footer = f"Vestige evidence report · case {case['reference']} · generated {doc['generated_at']}"

    created = pdf_date(doc["generated_at"])

    def on_page(canvas: Any, template: Any) -> None:
        canvas.setDateFormatter(lambda *_: created)
        canvas.saveState()
        canvas.setFont(s.body.fontName, 7)
        canvas.drawString(15 * mm, 10 * mm, footer)
        canvas.drawRightString(A4[0] - 15 * mm, 10 * mm, f"page {template.page}")
        canvas.restoreState()

    template = SimpleDocTemplate(out, pagesize=A4, leftMargin=15 * mm, rightMargin=15 * mm, topMargin=15 * mm,
                                 bottomMargin=16 * mm, title=f"Case {case['reference']}: evidence report",
                                 author=doc["generated_by"], creator=f"Vestige {doc['reproducibility']['vestige']}",
                                 # Invariant: no random file id and no clock of its own; CreationDate and ModDate are
                                 # the document's generated_at (on_page), so the bytes follow from the document.
                                 invariant=1)
    template.build(story, onFirstPage=on_page, onLaterPages=on_page)
    return out.getvalue()
