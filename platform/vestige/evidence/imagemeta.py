"""A JSON-safe summary of what an image file says about itself: EXIF, XMP, text chunks.

Values are bounded (string length, entry counts, scan lengths) and the XMP
patterns cannot backtrack, so a hostile file cannot make the summary slow or
large.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from typing import Any

from PIL import ExifTags, Image, JpegImagePlugin

_MAX_TEXT_BYTES = 4096  # per metadata string value
_MAX_LIST_ITEMS = 32  # longer EXIF arrays (strip offsets, tables) are dropped
_MAX_TEXT_ENTRIES = 64
_MAX_XMP_SCAN = 1 << 20  # bytes of an XMP packet that are searched
_MAX_XMP_MATCHES = 512  # candidate fields looked at, of each kind
_MAX_XMP_ELEMENT = 1 << 16  # how far the end of an element is looked for
_MAX_EXIF_ENTRIES = 256


def _clean_str(text: str) -> str | None:
    text = text.replace("\x00", "").strip()
    raw = text.encode("utf-8", "replace")  # lone surrogates become "?"
    if len(raw) > _MAX_TEXT_BYTES:
        raw = raw[:_MAX_TEXT_BYTES]
    text = raw.decode("utf-8", "ignore")
    return text or None


def _decode_bytes(raw: bytes) -> str | None:
    return _clean_str(raw[: _MAX_TEXT_BYTES * 4].decode("utf-8", "replace"))


def _printable_ascii(raw: bytes) -> str | None:
    raw = raw.rstrip(b"\x00 ")
    if raw and len(raw) <= 256 and all(32 <= b < 127 for b in raw):
        return raw.decode("ascii")
    return None


def _user_comment(raw: bytes) -> str | None:
    code, body = raw[:8], raw[8:]
    if code.startswith(b"UNICODE"):
        # byte order is not recorded; take the one that gives more ASCII
        be = sum(1 for i in range(0, min(len(body), 200) - 1, 2) if body[i] == 0)
        le = sum(1 for i in range(1, min(len(body), 200), 2) if body[i] == 0)
        return _clean_str(body.decode("utf-16-le" if le > be else "utf-16-be", "replace"))
    if code.startswith(b"ASCII") or code == b"\x00" * 8:
        return _decode_bytes(body)
    return _decode_bytes(raw)


_XP_TAGS = {0x9C9B, 0x9C9C, 0x9C9D, 0x9C9E, 0x9C9F}
# IFD pointers (Exif, GPS, Interop), MakerNote, XMP, IPTC, Photoshop, ICC: binary or summarised elsewhere
_SKIP_TAGS = {0x8769, 0x8825, 0xA005, 0x927C, 0x02BC, 0x83BB, 0x8649, 0x8773}


def _json_value(value: Any) -> Any:
    """A JSON-safe version of an EXIF value, or None to leave it out."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _clean_str(value)
    if isinstance(value, (bytes, bytearray)):
        return _printable_ascii(bytes(value))
    if isinstance(value, (tuple, list)):
        if not value or len(value) > _MAX_LIST_ITEMS:
            return None
        items = [_json_value(v) for v in value]
        if any(v is None or isinstance(v, list) for v in items):
            return None
        return items
    try:  # IFDRational and other numbers
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def _exif_entry(tag: int, value: Any, names: dict[int, str]) -> tuple[str, Any] | None:
    if tag in _SKIP_TAGS:
        return None
    name = names.get(tag) or f"Tag0x{tag:04X}"
    if tag == 0x9286 and isinstance(value, (bytes, bytearray)):  # UserComment
        converted = _user_comment(bytes(value))
    elif tag in _XP_TAGS and isinstance(value, (bytes, bytearray, tuple)):
        raw = bytes(value) if not isinstance(value, tuple) else bytes(v & 0xFF for v in value)
        converted = _clean_str(raw.decode("utf-16-le", "replace"))
    else:
        converted = _json_value(value)
    return None if converted is None else (name, converted)


def _exif_summary(image: Image.Image, fmt: str) -> tuple[dict, bool]:
    exif = image.getexif()
    summary: dict[str, Any] = {}
    sources: list[tuple[dict, dict[int, str]]] = [(dict(exif.items()), ExifTags.TAGS)]
    if ExifTags.IFD.Exif in exif:
        sources.append((exif.get_ifd(ExifTags.IFD.Exif), ExifTags.TAGS))
    if ExifTags.IFD.GPSInfo in exif:
        sources.append((exif.get_ifd(ExifTags.IFD.GPSInfo), ExifTags.GPSTAGS))
    for tags, names in sources:
        for tag, value in tags.items():
            entry = _exif_entry(tag, value, names)
            if entry is not None and len(summary) < _MAX_EXIF_ENTRIES:
                summary.setdefault(entry[0], entry[1])
    has_thumbnail = False
    if fmt != "TIFF":  # in a TIFF, IFD1 is the next page rather than a thumbnail
        has_thumbnail = 0x0201 in exif.get_ifd(ExifTags.IFD.IFD1)
    return summary, has_thumbnail


_XMP_FIELDS = (
    "DigitalSourceType",
    "CreatorTool",
    "softwareAgent",
    "CreateDate",
    "ModifyDate",
    "MetadataDate",
    "DateCreated",
    "DateTimeOriginal",
    "Make",
    "Model",
    "Software",
    "creator",
    "title",
    "description",
    "Credit",
    "rights",
    "Label",
    "DocumentID",
    "InstanceID",
    "OriginalDocumentID",
)
# Written so that hostile input cannot make them backtrack: attribute values
# stop at their closing quote, tag bodies at the next "<".
_XMP_OPEN = re.compile(r"<([\w.-]+):(" + "|".join(_XMP_FIELDS) + r")\b([^<>]*?)(/?)>")
_XMP_ATTR = re.compile(r"(?<=[\w.-]):(" + "|".join(_XMP_FIELDS) + r")\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_XMP_RESOURCE = re.compile(r"\brdf:resource\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
_TAG = re.compile(r"<[^>]*>")


def _xmp_summary(raw: Any) -> dict:
    """Selected XMP fields by local name, found with regular expressions.

    XMP is XML from an untrusted file; it is scanned, never parsed, so entity
    tricks cannot cost anything. The first occurrence of each field wins,
    except ``softwareAgent`` (edit history), which lists every distinct agent.
    """
    if isinstance(raw, (bytes, bytearray)):
        text = bytes(raw[:_MAX_XMP_SCAN]).decode("utf-8", "replace")
    elif isinstance(raw, str):
        text = raw[:_MAX_XMP_SCAN]
    else:
        return {}
    found: dict[str, Any] = {}

    def add(key: str, value: str) -> None:
        cleaned = _clean_str(" ".join(html.unescape(value).split()))
        if cleaned is None:
            return
        if key == "softwareAgent":
            agents = found.setdefault(key, [])
            if cleaned not in agents and len(agents) < 16:
                agents.append(cleaned)
        else:
            found.setdefault(key, cleaned)

    for match in itertools.islice(_XMP_ATTR.finditer(text), _MAX_XMP_MATCHES):
        add(match.group(1), match.group(2) if match.group(2) is not None else match.group(3))
    for match in itertools.islice(_XMP_OPEN.finditer(text), _MAX_XMP_MATCHES):
        prefix, key, attrs, self_closing = match.groups()
        value = ""
        if not self_closing:
            end = text.find(f"</{prefix}:{key}", match.end(), match.end() + _MAX_XMP_ELEMENT)
            if end != -1:
                value = _TAG.sub(" ", text[match.end() : end])
        if not value.strip():
            resource = _XMP_RESOURCE.search(attrs)
            if resource:
                value = resource.group(1) if resource.group(1) is not None else resource.group(2)
        add(key, value)
    return found


def _text_summary(image: Image.Image, fmt: str) -> dict:
    texts: dict[str, str] = {}
    items: list[tuple[Any, Any]] = []
    if fmt == "PNG":
        chunks = image.text if not getattr(image, "is_animated", False) else image.info
        items = [(k, v) for k, v in chunks.items() if isinstance(v, str) and k != "XML:com.adobe.xmp"]
    comment = image.info.get("comment")
    if isinstance(comment, (bytes, bytearray)) and fmt in ("JPEG", "GIF"):
        items.append(("comment", _decode_bytes(bytes(comment))))
    for key, value in items[:_MAX_TEXT_ENTRIES]:
        k = _clean_str(str(key))
        v = _clean_str(str(value)) if value is not None else None
        if k and v:
            texts[k] = v
    return texts


def metadata_summary(image: Image.Image, fmt: str) -> dict:
    meta: dict[str, Any] = {}
    try:
        meta["exif"], meta["has_thumbnail"] = _exif_summary(image, fmt)
    except Exception:  # malformed EXIF does not make the image unusable
        meta["exif"], meta["has_thumbnail"] = {}, False
        meta["exif_unreadable"] = True
    xmp = image.info.get("xmp") or image.info.get("XML:com.adobe.xmp")
    meta["has_xmp"] = bool(xmp)
    meta["xmp"] = _xmp_summary(xmp) if xmp else {}
    meta["text"] = _text_summary(image, fmt)
    meta["icc_profile"] = bool(image.info.get("icc_profile"))
    dpi = _json_value(image.info.get("dpi"))
    if isinstance(dpi, list) and len(dpi) == 2:
        meta["dpi"] = [float(d) for d in dpi]
    if fmt == "JPEG":
        jpeg: dict[str, Any] = {"progressive": bool(image.info.get("progressive") or image.info.get("progression"))}
        sampling = {0: "4:4:4", 1: "4:2:2", 2: "4:2:0"}.get(JpegImagePlugin.get_sampling(image))
        if sampling:
            jpeg["subsampling"] = sampling
        meta["jpeg"] = jpeg
    return meta
