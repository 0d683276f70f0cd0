"""What generators write into a file: PNG/WebP text chunks, XMP ``DigitalSourceType``, EXIF ``Software``.

Each of these is a claim the file makes about itself. It is trivially
stripped or forged, so it can name a generator but never prove a camera.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from PIL import ExifTags, Image

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: IPTC digital source types that declare generative-AI or algorithmic involvement.
SYNTHETIC_SOURCE_TYPES = frozenset({
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
    "compositeSynthetic",
})
#: IPTC digital source types that declare a capture by a camera.
CAPTURE_SOURCE_TYPES = frozenset({"digitalCapture", "computationalCapture"})
#: Substrings of EXIF Software / C2PA generator names that name a generator, and the source reported.
SOFTWARE_SIGNATURES = {
    "stable diffusion": "stable-diffusion",
    "novelai": "novelai",
    "midjourney": "midjourney",
    "dall-e": "dall-e",
    "dall·e": "dall-e",
    "firefly": "adobe-firefly",
    "comfyui": "comfyui",
    "invokeai": "invokeai",
    "automatic1111": "automatic1111",
}
_SOURCE_TYPE = re.compile(r"DigitalSourceType[^A-Za-z]{0,40}?(?:https?://cv\.iptc\.org/newscodes/digitalsourcetype/)?([A-Za-z]+)")
_XMP_PACKET = re.compile(rb"<x:xmpmeta.*?</x:xmpmeta>", re.S)
_A1111_MODEL = re.compile(r"Model: ([^,\n]+)")
#: Characters kept of any text copied into evidence, and text chunk names listed.
TEXT_LIMIT = 400
CHUNK_NAMES_LIMIT = 20


def clip_text(value: str, limit: int = TEXT_LIMIT) -> str:
    """``value`` cut to ``limit`` characters, marked when cut, so evidence stays bounded."""
    return value if len(value) <= limit else value[:limit] + "…"


def source_type_name(value: str | None) -> str | None:
    """The IPTC term of a digital source type given as a term or as its full URI."""
    if not value:
        return None
    return str(value).rstrip("/").rsplit("/", 1)[-1] or None


def software_signature(value: str) -> str | None:
    """The generator a software name points to (``"Adobe Firefly 2"`` → ``adobe-firefly``), or ``None``."""
    lowered = value.lower()
    return next((source for needle, source in SOFTWARE_SIGNATURES.items() if needle in lowered), None)


def text_chunks(image: Image.Image) -> dict[str, str]:
    """The text entries Pillow read from the file (PNG tEXt/iTXt/zTXt, WebP, GIF comments)."""
    chunks = {}
    for key, value in (image.info or {}).items():
        if isinstance(value, bytes):
            if str(key).lower() in ("exif", "icc_profile"):
                continue
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            chunks[str(key)] = value
    return chunks


def generator_from_text(chunks: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
    """Which generator wrote these text chunks, with the evidence kept short."""
    if "parameters" in chunks and ("Steps:" in chunks["parameters"] or "Sampler:" in chunks["parameters"]):
        model = _A1111_MODEL.search(chunks["parameters"])
        return "automatic1111", {"text_chunk": "parameters", "generator_model": model.group(1).strip() if model else None,
                                 "parameters": clip_text(chunks["parameters"])}
    if "workflow" in chunks or ("prompt" in chunks and chunks["prompt"].lstrip().startswith("{")):
        return "comfyui", {"text_chunk": "workflow" if "workflow" in chunks else "prompt"}
    for key in ("invokeai_metadata", "invokeai_graph", "sd-metadata", "Dream"):
        if key in chunks:
            return "invokeai", {"text_chunk": key}
    if chunks.get("Software", "").lower().startswith("novelai") or chunks.get("Source", "").lower().startswith("novelai"):
        evidence: dict[str, Any] = {"text_chunk": "Software"}
        try:
            comment = json.loads(chunks.get("Comment", "{}"))
            evidence["generator_model"] = comment.get("model") if isinstance(comment, dict) else None
        except json.JSONDecodeError:
            pass
        return "novelai", evidence
    return None, {}


def xmp_source_type(data: bytes, chunks: dict[str, str]) -> str | None:
    """The IPTC ``DigitalSourceType`` declared in the file's XMP packet, if any."""
    texts = [m.decode("utf-8", "replace") for m in _XMP_PACKET.findall(data[:4 * 2**20])]
    texts += [v for k, v in chunks.items() if "xmp" in k.lower()]
    for text in texts:
        match = _SOURCE_TYPE.search(text)
        if match:
            return match.group(1)
    return None


@dataclass
class GeneratorTags:
    """What the file's own metadata says, and the synthetic signals it gives."""

    evidence: dict[str, Any]
    source: str | None = None
    signals: list[str] = field(default_factory=list)


def read_generator_tags(data: bytes, image: Image.Image, exif: Image.Exif) -> GeneratorTags:
    """Generator signatures in ``image``'s text chunks, XMP and EXIF ``Software``."""
    chunks = text_chunks(image)
    software = str(exif.get(ExifTags.Base.Software, "") or "").strip()
    evidence: dict[str, Any] = {"text_chunks": sorted(chunks)[:CHUNK_NAMES_LIMIT], "exif_software": clip_text(software) or None}
    tags = GeneratorTags(evidence=evidence)

    source, text_evidence = generator_from_text(chunks)
    if source:
        tags.source = source
        tags.signals.append(f"text chunk written by {source}")
        evidence.update(text_evidence)
    source_type = xmp_source_type(data, chunks)
    evidence["digital_source_type"] = source_type
    if source_type in SYNTHETIC_SOURCE_TYPES:
        tags.signals.append(f"XMP DigitalSourceType {source_type}")
    software_source = software_signature(software) if software else None
    if software_source:
        tags.signals.append(f"EXIF Software {clip_text(software, 80)!r}")
        tags.source = tags.source or software_source
    return tags
