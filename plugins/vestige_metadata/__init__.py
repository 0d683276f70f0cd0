"""Provenance metadata: what the file itself says about where it came from.

Labs check this before any model. This detector reads generator metadata
(PNG/WebP text chunks written by popular generators, the IPTC/XMP
``DigitalSourceType``, EXIF ``Software``) and signs of camera originality.

Metadata is trivially forged or stripped, so the finding is ``synthetic`` when
a generator has written its signature, ``unknown`` otherwise, and never
``real``: only a cryptographically asserted provenance could support that.
"""

from __future__ import annotations

from vestige.plugin import hookimpl
from vestige_metadata.detector import MetadataDetector

__version__ = "0.1.0"
__all__ = ["MetadataDetector", "vestige_detectors"]


@hookimpl
def vestige_detectors() -> list[MetadataDetector]:
    return [MetadataDetector()]
