"""Provenance metadata: what the file itself says about where it came from.

Labs check this before any model. The ``metadata`` detector reads C2PA
Content Credentials, the invisible watermarks of Stable Diffusion v1 and
SDXL, generator metadata (text chunks, XMP ``DigitalSourceType``, EXIF
``Software``) and signs of camera originality; ``docs/metadata.md`` says what
each outcome means. Its verdicts get a section of their own in case reports.
"""

from __future__ import annotations

from typing import Any

from vestige.plugin import ReportSection, hookimpl
from vestige_metadata.detector import MetadataDetector
from vestige_metadata.report_section import metadata_report_section

__version__ = "0.2.0"
__all__ = ["MetadataDetector", "vestige_detectors", "vestige_report_sections"]


@hookimpl
def vestige_detectors() -> list[MetadataDetector]:
    return [MetadataDetector()]


@hookimpl
def vestige_report_sections(verdicts: list[Any]) -> list[ReportSection]:
    """The "Provenance metadata" section, when the case has metadata verdicts."""
    section = metadata_report_section(verdicts)
    return [section] if section is not None else []
