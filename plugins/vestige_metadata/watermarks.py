"""Invisible watermarks of Stable Diffusion, read with invisible-watermark's DWT-DCT decoder.

Two public marks are checked:

- Stable Diffusion v1 (CompVis/Runway scripts): the 17 bytes of
  ``StableDiffusionV1``, 136 bits, embedded in proper BGR order.
- SDXL (Stability's generative-models and diffusers): a fixed 48-bit pattern.
  Some diffusers versions hand the encoder RGB where it expects BGR, so the
  mark sits in a different chroma plane; both channel orders are read.

The decoder yields one bit per position; by chance an unmarked image matches
about half. A mark counts as present when the matching bits reach the
threshold at which chance would do as well less than once in a million
(:data:`CHANCE_LIMIT`); the evidence gives the count, the threshold and that
probability, never a bare yes or no.

These marks are forgeable (the encoder is public: anyone can stamp any image)
and fragile: resizing moves every block, and JPEG's chroma subsampling
(4:2:0, the default of most encoders) erases the chroma plane the mark lives
in. A missing mark says nothing.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

#: A mark is reported present when chance would match as many bits with probability below this.
CHANCE_LIMIT = 1e-6
#: The decoder refuses (and the encoders never mark) images below this many pixels.
MIN_PIXELS = 256 * 256
#: A side shorter than this holds no whole decoder block row or column worth reading.
MIN_SIDE = 16
#: At most this many pixels are decoded: a full-width band through the middle.
#: A million pixels give each bit of the 136-bit mark over a hundred votes.
MAX_DECODED_PIXELS = 2**20
#: Rows of the image per row of decoder blocks (Haar DWT halves, blocks are 4×4).
_ROWS_PER_BLOCK_ROW = 8

_SDXL_MESSAGE = 0b101100111110110010010000011110111011000110011110


@dataclass(frozen=True)
class KnownMark:
    """A published watermark: its name, the generator it points to, and its bits."""

    name: str
    source: str
    bits: tuple[int, ...]
    #: Channel orders the generator's pipelines hand to the encoder.
    channel_orders: tuple[str, ...]


KNOWN_MARKS = (
    KnownMark("stable-diffusion-v1", "stable-diffusion-v1",
              tuple(int(b) for b in np.unpackbits(np.frombuffer(b"StableDiffusionV1", np.uint8))), ("bgr",)),
    KnownMark("stable-diffusion-xl", "stable-diffusion-xl",
              tuple(int(b) for b in bin(_SDXL_MESSAGE)[2:]), ("bgr", "rgb")),
)


def chance_probability(n_bits: int, matching: int) -> float:
    """P(at least ``matching`` of ``n_bits`` fair coin flips agree): how often chance does as well."""
    return sum(math.comb(n_bits, k) for k in range(matching, n_bits + 1)) / 2**n_bits


@cache
def threshold(n_bits: int) -> int:
    """The fewest matching bits that chance reaches with probability below :data:`CHANCE_LIMIT`."""
    return next(k for k in range(n_bits + 1) if chance_probability(n_bits, k) < CHANCE_LIMIT)


@dataclass
class WatermarkReading:
    evidence: dict[str, Any]
    source: str | None = None
    signals: list[str] = field(default_factory=list)


def decoded_band(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """The full-width rows that get decoded, and the index of their first decoder block row.

    Bits repeat over blocks in row-major order, so a full-width band keeps each
    block's bit; only the offset of its first block row has to be known.
    """
    height, width = rgb.shape[:2]
    if height * width <= MAX_DECODED_PIXELS:
        return rgb, 0
    rows = max(_ROWS_PER_BLOCK_ROW, MAX_DECODED_PIXELS // width // _ROWS_PER_BLOCK_ROW * _ROWS_PER_BLOCK_ROW)
    rows = max(rows, -(-MIN_PIXELS // width) // _ROWS_PER_BLOCK_ROW * _ROWS_PER_BLOCK_ROW + _ROWS_PER_BLOCK_ROW)
    first_block_row = max(0, (height - rows) // 2) // _ROWS_PER_BLOCK_ROW
    start = first_block_row * _ROWS_PER_BLOCK_ROW
    return rgb[start:start + rows], first_block_row


@cache
def _dwt_dct_codec() -> type:
    """invisible-watermark's ``dwtDct`` codec class (``EmbedMaxDct``), the one ``WatermarkDecoder`` calls.

    ``import imwatermark`` imports torch for its rivaGan method: seconds, and
    torch in every CPU worker, for a method never used here. The codec's own
    module needs only numpy, OpenCV and PyWavelets, so it is loaded from the
    installed package's file when that file is where it is expected.
    """
    spec = importlib.util.find_spec("imwatermark")
    locations = list(spec.submodule_search_locations or []) if spec else []
    path = Path(locations[0]) / "maxDct.py" if locations else None
    if path is None or not path.is_file():
        from imwatermark.maxDct import EmbedMaxDct

        return EmbedMaxDct
    module_spec = importlib.util.spec_from_file_location("vestige_metadata._imwatermark_maxdct", path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module.EmbedMaxDct


def _decode(band: np.ndarray, first_block_row: int, n_bits: int, order: str) -> np.ndarray:
    """The mark's bits as the decoder reads them from ``band``, realigned to the whole image."""
    pixels = band[:, :, ::-1] if order == "bgr" else band  # the decoder takes BGR
    bits = _dwt_dct_codec()(watermarks=[], wmLen=n_bits).decode(np.ascontiguousarray(pixels))
    blocks_per_row = (band.shape[1] // 4 * 4 // 2) // 4
    return np.roll(np.asarray(bits, dtype=np.uint8), first_block_row * blocks_per_row % n_bits)


def read_watermarks(image: Image.Image) -> WatermarkReading:
    """Matching bits of each known mark in ``image`` (RGB), with thresholds and chance probabilities."""
    width, height = image.size
    evidence: dict[str, Any] = {
        "method": "invisible-watermark dwtDct",
        "caveat": "forgeable by anyone with the public encoder; erased by resizing and 4:2:0 JPEG; absence proves nothing",
    }
    if width * height < MIN_PIXELS or min(width, height) < MIN_SIDE:
        evidence.update(checked=False, reason="smaller than 256×256 pixels (or narrower than 16), which these marks need")
        return WatermarkReading(evidence=evidence)
    band, first_block_row = decoded_band(np.asarray(image.convert("RGB")))
    evidence.update(checked=True, decoded_rows=[first_block_row * _ROWS_PER_BLOCK_ROW,
                                                first_block_row * _ROWS_PER_BLOCK_ROW + band.shape[0]])
    reading = WatermarkReading(evidence=evidence)
    marks = []
    for mark in KNOWN_MARKS:
        expected = np.array(mark.bits, dtype=np.uint8)
        best = None
        for order in mark.channel_orders:
            matching = int((_decode(band, first_block_row, len(expected), order) == expected).sum())
            if best is None or matching > best[0]:
                best = (matching, order)
        matching, order = best
        needed = threshold(len(expected))
        present = matching >= needed
        marks.append({
            "name": mark.name,
            "bits": len(expected),
            "matching_bits": matching,
            "threshold": needed,
            "chance_probability": chance_probability(len(expected), matching),
            "channel_order": order,
            "present": present,
        })
        if present and reading.source is None:
            reading.source = mark.source
        if present:
            reading.signals.append(f"{mark.name} watermark: {matching}/{len(expected)} bits match (threshold {needed})")
    evidence["marks"] = marks
    return reading
