"""Estimate the quality a JPEG was saved at from its quantisation tables.

Most encoders (libjpeg, libjpeg-turbo, mozjpeg in its default mode, Pillow,
OpenCV, ImageMagick, most cameras' "IJG-compatible" firmware) derive their
tables from the example tables of the JPEG standard (ITU-T T.81, Annex K,
tables K.1 and K.2) scaled by the IJG quality formula. Comparing an image's
tables with those scaled tables for every quality 1..100 names the quality the
file was most probably written at, and says whether the match is exact.

Pillow (since 8.3) exposes ``image.quantization`` in *natural* (row-major)
order: its DQT reader reorders the zigzag-ordered bytes of the file through
``zigzag_index``. The standard tables below are therefore written in natural
order too; the round-trip tests (save at quality q, estimate q exactly) check
that the two orders agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "STANDARD_CHROMINANCE",
    "STANDARD_LUMINANCE",
    "JpegQualityEstimate",
    "estimate_jpeg_quality",
    "scaled_tables",
]

#: Table K.1, luminance, natural (row-major) order.
STANDARD_LUMINANCE: tuple[int, ...] = (
    16, 11, 10, 16, 24, 40, 51, 61,
    12, 12, 14, 19, 26, 58, 60, 55,
    14, 13, 16, 24, 40, 57, 69, 56,
    14, 17, 22, 29, 51, 87, 80, 62,
    18, 22, 37, 56, 68, 109, 103, 77,
    24, 35, 55, 64, 81, 104, 113, 92,
    49, 64, 78, 87, 103, 121, 120, 101,
    72, 92, 95, 98, 112, 100, 103, 99,
)  # fmt: skip

#: Table K.2, chrominance, natural (row-major) order.
STANDARD_CHROMINANCE: tuple[int, ...] = (
    17, 18, 24, 47, 99, 99, 99, 99,
    18, 21, 26, 66, 99, 99, 99, 99,
    24, 26, 56, 99, 99, 99, 99, 99,
    47, 66, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
    99, 99, 99, 99, 99, 99, 99, 99,
)  # fmt: skip


@dataclass(frozen=True)
class JpegQualityEstimate:
    """The IJG quality whose scaled standard tables best match an image's."""

    #: Best-matching IJG quality, 1..100.
    quality: int
    #: True when every table equals the scaled standard table exactly.
    exact: bool
    #: Mean absolute difference between the image's tables and the scaled
    #: standard tables at ``quality`` (0.0 when ``exact``).
    error: float
    #: Number of quantisation tables in the file.
    tables: int


def _ijg_scale(quality: int) -> int:
    # jpeg_quality_scaling() in libjpeg's jcparam.c
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scaled_tables(quality: int, *, force_baseline: bool = True) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The (luminance, chrominance) tables libjpeg writes for ``quality``.

    Mirrors ``jpeg_add_quant_table``: ``(t * scale + 50) // 100`` clamped to
    1..32767, and to 1..255 when ``force_baseline`` (what ``jpeg_set_quality``
    is called with by Pillow, cjpeg and nearly every other encoder).
    """
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be 1..100, not {quality}")
    scale = _ijg_scale(quality)
    high = 255 if force_baseline else 32767

    def scale_one(table: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(min(max((t * scale + 50) // 100, 1), high) for t in table)

    return scale_one(STANDARD_LUMINANCE), scale_one(STANDARD_CHROMINANCE)


def _candidates(force_baseline: bool) -> np.ndarray:
    # shape (100, 2, 64): quality 1..100, luminance/chrominance, coefficients
    return np.array(
        [scaled_tables(q, force_baseline=force_baseline) for q in range(1, 101)],
        dtype=np.int32,
    )


_BASELINE = _candidates(True)
_EXTENDED = _candidates(False)


def estimate_jpeg_quality(image: Image.Image) -> JpegQualityEstimate | None:
    """Estimate the IJG quality of a JPEG opened with Pillow.

    Returns ``None`` for anything that is not a JPEG (or a JPEG without
    quantisation tables, which cannot be decoded anyway). Table 0 is compared
    with the luminance table and every other table with the chrominance one,
    as libjpeg assigns them. On a tie the higher quality wins.
    """
    quantization = getattr(image, "quantization", None)
    if image.format not in ("JPEG", "MPO") or not quantization:
        return None
    ids = sorted(quantization)
    try:
        actual = np.array([list(quantization[i]) for i in ids], dtype=np.int32)
    except (TypeError, ValueError):
        return None
    if actual.ndim != 2 or actual.shape[1] != 64:
        return None
    which = np.array([0 if i == 0 else 1 for i in ids])
    # errors per quality: mean |actual - candidate| over all tables and coefficients
    errors = np.minimum(
        np.abs(_BASELINE[:, which, :] - actual).mean(axis=(1, 2)),
        np.abs(_EXTENDED[:, which, :] - actual).mean(axis=(1, 2)),
    )
    best = 99 - int(np.argmin(errors[::-1]))  # highest quality among equal errors
    error = float(errors[best])
    return JpegQualityEstimate(quality=best + 1, exact=error == 0.0, error=error, tables=len(ids))
