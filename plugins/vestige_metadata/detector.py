"""The metadata detector: what the file itself says about where it came from.

It reads four things (see ``docs/metadata.md``): C2PA Content Credentials,
the invisible watermarks of Stable Diffusion, generator metadata (text
chunks, XMP ``DigitalSourceType``, EXIF ``Software``) and signs of camera
originality. The finding is

- ``synthetic``, with the named source, when a signal that a generator left
  says so: an intact C2PA manifest declaring generative AI, a watermark
  above its threshold, or a generator's metadata;
- ``real`` only when provenance is cryptographically asserted: an intact
  manifest whose signer chains to one of the lab's trust anchors, declaring a
  camera capture and no generative step, with no signal to the contrary;
- ``unknown`` otherwise, with everything found listed in the evidence.
"""

from __future__ import annotations

import logging
import io
from collections.abc import Sequence
from typing import Any

from PIL import Image

from vestige.plugin import Detector, Finding, ImageInput, load_configuration
from vestige_metadata.camera import read_camera_signs
from vestige_metadata.content_credentials import (
    ContentCredentials,
    load_trust_anchors,
    make_context,
    read_content_credentials,
)
from vestige_metadata.generator_tags import read_generator_tags
from vestige_metadata.watermarks import read_watermarks

log = logging.getLogger(__name__)

_MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp", "TIFF": "image/tiff",
                "GIF": "image/gif", "HEIF": "image/heif", "AVIF": "image/avif", "BMP": "image/bmp"}


class MetadataDetector(Detector):
    name = "metadata"
    version = "0.2.0"
    kind = "provenance"
    description = "Content Credentials (C2PA), Stable Diffusion watermarks, generator metadata and camera EXIF."
    device = "cpu"
    batch_size = 64

    def __init__(self, *, trust_anchors: str | None = None) -> None:
        """``trust_anchors`` (a PEM file) overrides ``[provenance] trust_anchors`` of the configuration."""
        self._trust_anchors_path = trust_anchors
        self._context = None
        self._anchors_configured = False

    def load(self, device: str = "cpu") -> None:
        """Read the trust anchors and make the c2pa context once per process."""
        path = self._trust_anchors_path
        if path is None:
            path = load_configuration().provenance.trust_anchors
        pem = load_trust_anchors(path)
        self._context = make_context(pem)
        self._anchors_configured = pem is not None

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        if self._context is None:
            self.load()
        return [self._analyze_isolated(item) for item in batch]

    def _analyze_isolated(self, item: ImageInput) -> Finding:
        # One odd file must not cost the other images of its batch their findings.
        try:
            return self._analyze_one(item)
        except Exception as exc:  # recorded on this image's finding, as the platform does for a batch
            log.warning("metadata of %s could not be read", item.name, exc_info=True)
            message = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
            return self.finding(label="unknown", source=None, scores={}, evidence={}, error=message)

    def _analyze_one(self, item: ImageInput) -> Finding:
        with Image.open(io.BytesIO(item.data)) as opened:
            exif = opened.getexif()
            raw_exif = opened.info.get("exif")
            tags = read_generator_tags(item.data, opened, exif)
        credentials = read_content_credentials(item.data, _MEDIA_TYPES.get(item.format.upper()), self._context,
                                               anchors_configured=self._anchors_configured)
        watermarks = read_watermarks(item.image)
        camera = read_camera_signs(item.data, item.image, exif, raw_exif if isinstance(raw_exif, bytes) else None)

        signals = credentials.signals + watermarks.signals + tags.signals
        evidence: dict[str, Any] = {
            "signals": signals,
            "content_credentials": credentials.evidence,
            "watermarks": watermarks.evidence,
            "generator_metadata": tags.evidence,
            "camera": camera,
        }
        trusted_capture = credentials.state == "Trusted" and self._anchors_configured and credentials.declares_capture
        if signals and trusted_capture:
            # Signed camera pixels that also carry a generator's signature: one of them lies; say so, pick neither.
            evidence["why_unknown"] = ("a C2PA manifest signed by a trusted signer declares a camera capture, "
                                       "and other signals say synthetic: they conflict")
            return self.finding(label="unknown", source=None, scores={}, evidence=evidence)
        if signals:
            source = (credentials.source if credentials.signals else None) or watermarks.source or tags.source
            return self.finding(label="synthetic", source=source, scores={"synthetic": 1.0}, evidence=evidence)
        if trusted_capture:
            declared = credentials.evidence["digital_source_type"]
            evidence["signals"] = [f"C2PA manifest signed by a trusted signer declares {declared}"]
            return self.finding(label="real", source=None, scores={"real": 1.0}, evidence=evidence)
        evidence["why_unknown"] = _why_unknown(credentials, camera)
        return self.finding(label="unknown", source=None, scores={}, evidence=evidence)


def _why_unknown(credentials: ContentCredentials, camera: dict[str, Any]) -> str:
    """One sentence saying why nothing here settles the question."""
    if credentials.state == "Invalid":
        return "a C2PA manifest is present but fails validation, so it proves nothing"
    if credentials.evidence.get("read_error"):
        return "the c2pa library could not parse the file, so whether it holds Content Credentials is not known"
    if credentials.declares_capture and credentials.state == "Valid":
        return "a C2PA manifest declares a camera capture, but its signer chains to no configured trust anchor"
    if credentials.declares_capture:
        return "a C2PA manifest declares a camera capture, but it is not trusted"
    if camera["thumbnail_mismatch"]:
        return "the EXIF thumbnail does not match the picture: the pixels changed after the thumbnail was written"
    if camera["signs"]:
        return "camera EXIF is present, but EXIF is easily copied; no signed provenance"
    return "no generator signal and no signed provenance"
