"""The metadata detector: generator signatures in text chunks, XMP and EXIF."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Sequence
from typing import Any

from PIL import ExifTags, Image

from vestige.plugin import Detector, Finding, ImageInput

IPTC_SOURCE_TYPES = "http://cv.iptc.org/newscodes/digitalsourcetype/"
#: IPTC digital source types that declare generative-AI involvement.
SYNTHETIC_SOURCE_TYPES = {
    "trainedAlgorithmicMedia",
    "compositeWithTrainedAlgorithmicMedia",
    "algorithmicMedia",
    "compositeSynthetic",
}
_SOURCE_TYPE = re.compile(r"DigitalSourceType[^A-Za-z]{0,40}?(?:https?://cv\.iptc\.org/newscodes/digitalsourcetype/)?([A-Za-z]+)")
_XMP_PACKET = re.compile(rb"<x:xmpmeta.*?</x:xmpmeta>", re.S)
#: Substrings of EXIF Software / text values that name a generator, and the source reported.
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
_A1111_MODEL = re.compile(r"Model: ([^,\n]+)")
_TEXT_LIMIT = 400


def _clip(value: str) -> str:
    return value if len(value) <= _TEXT_LIMIT else value[:_TEXT_LIMIT] + "…"


def _text_chunks(image: Image.Image) -> dict[str, str]:
    chunks = {}
    for key, value in (image.info or {}).items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        if isinstance(value, str):
            chunks[str(key)] = value
    return chunks


def _generator_from_text(chunks: dict[str, str]) -> tuple[str | None, dict[str, Any]]:
    """Which generator wrote these text chunks, with the evidence kept short."""
    if "parameters" in chunks and ("Steps:" in chunks["parameters"] or "Sampler:" in chunks["parameters"]):
        model = _A1111_MODEL.search(chunks["parameters"])
        return "automatic1111", {"text_chunk": "parameters", "generator_model": model.group(1).strip() if model else None,
                                 "parameters": _clip(chunks["parameters"])}
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


def _software_signature(value: str) -> str | None:
    lowered = value.lower()
    return next((source for needle, source in SOFTWARE_SIGNATURES.items() if needle in lowered), None)


def _source_type(data: bytes, chunks: dict[str, str]) -> str | None:
    texts = [m.decode("utf-8", "replace") for m in _XMP_PACKET.findall(data[:4 * 2**20])]
    texts += [v for k, v in chunks.items() if "xmp" in k.lower()]
    for text in texts:
        match = _SOURCE_TYPE.search(text)
        if match:
            return match.group(1)
    return None


class MetadataDetector(Detector):
    name = "metadata"
    version = "0.1.0"
    kind = "provenance"
    description = "Generator signatures in the file's metadata (text chunks, XMP DigitalSourceType, EXIF)."
    device = "cpu"
    batch_size = 64

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        return [self._analyze_one(item) for item in batch]

    def _analyze_one(self, item: ImageInput) -> Finding:
        with Image.open(io.BytesIO(item.data)) as image:
            chunks = _text_chunks(image)
            exif = image.getexif()
        software = str(exif.get(ExifTags.Base.Software, "") or "").strip()
        make = str(exif.get(ExifTags.Base.Make, "") or "").strip()
        model = str(exif.get(ExifTags.Base.Model, "") or "").strip()
        evidence: dict[str, Any] = {
            "text_chunks": sorted(chunks)[:20],
            "exif_software": software or None,
            "camera_make": make or None,
            "camera_model": model or None,
        }
        signals: list[str] = []

        source, text_evidence = _generator_from_text(chunks)
        if source:
            signals.append(f"text chunk written by {source}")
            evidence.update(text_evidence)
        source_type = _source_type(item.data, chunks)
        evidence["digital_source_type"] = source_type
        if source_type in SYNTHETIC_SOURCE_TYPES:
            signals.append(f"IPTC DigitalSourceType {source_type}")
        software_source = _software_signature(software) if software else None
        if software_source:
            signals.append(f"EXIF Software {software!r}")
            source = source or software_source
        evidence["signals"] = signals

        if signals:
            return self.finding(
                label="synthetic", source=source, scores={"synthetic": 1.0}, confidence=None, evidence=evidence
            )
        # Camera EXIF is a sign, not proof: it is easily copied onto any file.
        evidence["camera_exif"] = bool(make or model)
        return self.finding(label="unknown", source=None, scores={}, confidence=None, evidence=evidence)
