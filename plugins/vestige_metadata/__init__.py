"""Provenance metadata: what the file itself says about where it came from.

Labs check this before any model. The ``metadata`` detector reads C2PA
Content Credentials, the invisible watermarks of Stable Diffusion v1 and
SDXL, generator metadata (text chunks, XMP ``DigitalSourceType``, EXIF
``Software``) and signs of camera originality; ``docs/metadata.md`` says what
each outcome means.
"""

from __future__ import annotations

from vestige.plugin import hookimpl
from vestige_metadata.detector import MetadataDetector

__version__ = "0.2.0"
__all__ = ["MetadataDetector", "vestige_detectors"]


@hookimpl
def vestige_detectors() -> list[MetadataDetector]:
    return [MetadataDetector()]

