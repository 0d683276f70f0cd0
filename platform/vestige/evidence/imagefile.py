"""Accept, validate and describe image files.

Everything that reads untrusted image bytes goes through :func:`open_image`
or :func:`inspect_image`. Both

1. check the byte size against :class:`ImageLimits`,
2. identify the type from magic bytes only (:func:`sniff_format`; a file name
   is never trusted),
3. open the file with exactly the Pillow plugin for that type and check that
   Pillow agrees,
4. read the dimensions from the header and refuse anything larger than
   ``ImageLimits.max_pixels``, or whose decoded size (pixels × the larger of
   the bits per pixel the file declares and those Pillow holds it in) is
   over ``ImageLimits.max_decoded_bytes``, *before* any pixel is decoded
   (our limits, not Pillow's global ``Image.MAX_IMAGE_PIXELS``, which is
   never touched): a 16-bit RGBA PNG just under the pixel limit is 800 MB of
   samples from under 1 MB of file, and
5. decode the first frame completely, so that truncated or corrupt files are
   refused here rather than in a detector.

Every refusal is an :class:`~vestige.core.errors.InvalidImageError` whose message
is one sentence naming the file. No global Pillow state is changed
(``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``, warning
filters), so this module is safe to use from several threads.

:func:`inspect_image` also computes what ingest stores: SHA-256, a JSON-safe
metadata summary, perceptual hashes and, for JPEGs, an estimate of the
quality they were saved at. It decodes once and reuses the decoded frame for
every hash; the wavelet hash and colour hash are computed by faster code that
gives the same bits as ImageHash (see :mod:`vestige.evidence.imagehashes` and the
equality tests).
"""

from __future__ import annotations

import codecs
import hashlib
import io
from dataclasses import dataclass

import imagehash
from PIL import Image, ImageFile

from vestige.core.errors import InvalidImageError
from vestige.evidence.imageconvert import to_rgb
from vestige.evidence.imageframes import MAX_COUNTED_FRAMES, _count_gif_frames  # noqa: F401  (re-exported)
from vestige.evidence.imageframes import count_frames as _count_frames
from vestige.evidence.imagehashes import colorhash_int, hash_to_int, whash_int
from vestige.evidence.imagemeta import metadata_summary
from vestige.evidence.jpegquality import JpegQualityEstimate, estimate_jpeg_quality

__all__ = [
    "MAX_COUNTED_FRAMES",
    "SNIFF_BYTES",
    "SUPPORTED_FORMATS",
    "ImageFacts",
    "ImageLimits",
    "inspect_image",
    "decode_image",
    "open_image",
    "sniff_format",
]

#: Pillow format name -> media type of every format Vestige accepts: the one list, decided per format
#: (docs/architecture.md, "Image formats"). AVIF is here because Pillow (>= 11.3) decodes it with libavif.
#: HEIC/HEIF is not: Pillow has no HEVC decoder, so it is refused with a sentence that says so.
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "GIF": "image/gif",
    "AVIF": "image/avif",
}

#: How many leading bytes :func:`sniff_format` needs to see.
SNIFF_BYTES = 32
#: The file suffixes a walk over a folder of pictures picks up (training folders, calibration sets).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")

_LABELS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "TIFF": "TIFF", "BMP": "BMP", "GIF": "GIF", "AVIF": "AVIF"}
_SUPPORTED_LIST = ", ".join(_LABELS[f] for f in SUPPORTED_FORMATS)
# ISO base media file brands (the ftyp box): AVIF's, and HEIC's, which Vestige cannot decode.
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_HEIC_BRANDS = frozenset({b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs"})
# Pillow formats that are one of ours under another name (MPO: multi-picture
# JPEG as written by many cameras and phones; its first frame is a JPEG).
_PILLOW_ALIASES = {"MPO": "JPEG"}
# Sizes of the BMP DIB headers Pillow understands (OS/2 1.x/2.x, v1..v5).
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})



# ---------------------------------------------------------------------------
# limits, facts


@dataclass(frozen=True)
class ImageLimits:
    """What an accepted image may be at most."""

    #: Largest file, in bytes.
    max_bytes: int = 100 * 2**20
    #: Largest first frame, in pixels (width * height), checked before decoding.
    max_pixels: int = 100_000_000
    #: Largest first frame decoded, in bytes: pixels × the larger of the bits per pixel the file declares
    #: (bit depth × channels) and those Pillow holds it in; checked before decoding.
    max_decoded_bytes: int = 256 * 2**20

    @classmethod
    def from_config(cls, ingest: object) -> ImageLimits:
        """The limits of an ``[ingest]`` configuration section."""
        return cls(max_bytes=ingest.max_file_bytes, max_pixels=ingest.max_pixels,  # type: ignore[attr-defined]
                   max_decoded_bytes=ingest.max_decoded_bytes)  # type: ignore[attr-defined]


@dataclass(frozen=True)
class ImageFacts:
    """What ingest records about an accepted image."""

    sha256: str
    size: int
    format: str
    media_type: str
    mode: str
    width: int
    height: int
    frames: int
    #: JSON-safe summary (no bytes, no NULs, no NaN; strings at most 4 KiB):
    #: ``exif`` (tag name -> str/int/float or short list; IFD0, Exif and GPS
    #: IFDs), ``has_thumbnail``, ``has_xmp``, ``xmp`` (selected fields such
    #: as DigitalSourceType and CreatorTool), ``text`` (PNG text chunks, JPEG
    #: and GIF comments), ``icc_profile`` and, where present, ``dpi``,
    #: ``jpeg`` (progressive, subsampling) and ``exif_unreadable``.
    metadata: dict
    #: ImageHash phash/dhash/whash (hash_size 8) as signed 64-bit integers:
    #: the 64 bits, first bit most significant, read as an int64.
    phash: int
    dhash: int
    whash: int
    #: ImageHash colorhash (binbits 3): 42 bits, so always non-negative.
    colorhash: int
    jpeg_quality: JpegQualityEstimate | None


# ---------------------------------------------------------------------------
# sniffing


def sniff_format(head: bytes) -> str | None:
    """The format of a file from its first bytes (at least :data:`SNIFF_BYTES`).

    Returns a key of :data:`SUPPORTED_FORMATS` or ``None``. Only magic bytes
    count; a BMP must also declare a DIB header size Pillow knows, so that a
    text file that happens to start with ``BM`` is not taken for one.
    """
    if head[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "TIFF"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if head[:2] == b"BM" and len(head) >= 18 and int.from_bytes(head[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if _ftyp_brands(head) & _AVIF_BRANDS:
        return "AVIF"
    return None


def _ftyp_brands(head: bytes) -> set[bytes]:
    """The major and compatible brands of an ISO base media file's ftyp box (as far as ``head`` holds it)."""
    if head[4:8] != b"ftyp" or len(head) < 12:
        return set()
    end = min(int.from_bytes(head[:4], "big"), len(head))
    return {head[8:12]} | {head[i:i + 4] for i in range(16, end - 3, 4)}


def _looks_like_text(head: bytes) -> bool:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return True
    if not head or b"\x00" in head:
        return False
    try:
        text = codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    if not text:
        return False
    printable = sum(1 for ch in text if ch.isprintable() or ch in "\t\n\r\f\v")
    return printable >= 0.95 * len(text)


def _unsupported_hint(head: bytes) -> str:
    if head.startswith(b"%PDF"):
        return "; it looks like a PDF document, not an image"
    if _ftyp_brands(head) & _HEIC_BRANDS or head[8:12] in (b"mif1", b"msf1"):
        return "; it looks like a HEIC/HEIF image, which is not supported (no HEVC decoder): convert it to JPEG or PNG first"
    if _looks_like_text(head):
        return "; it looks like text, not an image"
    return ""


# ---------------------------------------------------------------------------
# opening and validation


def _display_name(name: str) -> str:
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in str(name)).split())
    if len(cleaned) > 200:
        cleaned = cleaned[:197] + "..."
    return cleaned or "image"


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text.rstrip(". ")
    if len(text) > 160:
        text = text[:157] + "..."
    return text or type(exc).__name__


def _human_bytes(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    raise AssertionError("unreachable")


def _pixel_limit_error(name: str, limits: ImageLimits, size: tuple[int, int] | None) -> InvalidImageError:
    if size is None:
        what = f"{name} has more pixels than the limit of {limits.max_pixels:,} pixels"
    else:
        w, h = size
        what = f"{name} is {w}x{h} ({w * h:,} pixels), more than the limit of {limits.max_pixels:,} pixels"
    return InvalidImageError(f"{what} (ingest.max_pixels).")


# Bits per pixel of Pillow's in-memory modes: one byte for 1-bit, L and P, two for 16-bit greyscale, else four.
_MODE_BITS = {"1": 8, "L": 8, "P": 8, "I;16": 16, "I;16L": 16, "I;16B": 16, "I;16N": 16}
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def _declared_bits(image: ImageFile.ImageFile, fmt: str, data: bytes) -> int:
    """Bits per pixel the file itself declares (bit depth × channels), where its header says so; else 0."""
    if fmt == "PNG" and data[12:16] == b"IHDR" and len(data) >= 26:
        return data[24] * _PNG_CHANNELS.get(data[25], 4)
    if fmt == "TIFF":
        tags = getattr(image, "tag_v2", {})
        bits = tags.get(258, 1)
        samples = int(tags.get(277, 1) or 1)
        if isinstance(bits, tuple):
            return int(sum(bits)) if len(bits) > 1 else int(bits[0] if bits else 1) * samples
        return int(bits or 1) * samples
    return 0


def _decoded_limit_error(name: str, limits: ImageLimits, size: tuple[int, int], bits: int, decoded: int) -> InvalidImageError:
    w, h = size
    return InvalidImageError(
        f"{name} is {w}x{h} at {bits} bits per pixel ({_human_bytes(decoded)} decoded), more than the limit of "
        f"{_human_bytes(limits.max_decoded_bytes)} (ingest.max_decoded_bytes)."
    )


def _open_checked(
    data: bytes, name: str, limits: ImageLimits, *, count_frames: bool, max_side: int | None = None
) -> tuple[ImageFile.ImageFile, str, int]:
    """Validate ``data`` and return (decoded first frame, format, frame count).

    ``max_side``: the caller needs at most this many pixels a side (a thumbnail), so a JPEG is
    decoded at the largest 1/2, 1/4 or 1/8 scale that still covers it, never whole.
    """
    shown = _display_name(name)
    size = len(data)
    if size > limits.max_bytes:
        raise InvalidImageError(
            f"{shown} is {_human_bytes(size)}, larger than the limit of {_human_bytes(limits.max_bytes)} "
            "(ingest.max_file_bytes)."
        )
    if size == 0:
        raise InvalidImageError(f"{shown} is empty (0 bytes).")
    head = bytes(data[:1024])
    fmt = sniff_format(head)
    if fmt is None:
        raise InvalidImageError(
            f"{shown} is not a supported image type ({_SUPPORTED_LIST}){_unsupported_hint(head)}."
        )
    label = _LABELS[fmt]

    # Open with exactly the plugin for the sniffed type. Calling the plugin's
    # factory instead of Image.open keeps Pillow's global decompression-bomb
    # threshold (and its warning) out of it; our own limit applies below.
    if fmt not in Image.OPEN:
        Image.init()
    if fmt not in Image.OPEN:
        raise InvalidImageError(f"{shown} is a {label} image, which this installation cannot read.")
    factory, accept = Image.OPEN[fmt]
    accepted = accept(head[:16]) if accept is not None else True
    if not accepted or isinstance(accepted, str):  # a str is Pillow's reason for refusing
        raise InvalidImageError(f"{shown} starts like a {label} image but is not a valid one.")
    try:
        image = factory(io.BytesIO(data), "")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _pixel_limit_error(shown, limits, None) from None
    except MemoryError:
        raise
    except Exception as exc:  # untrusted input: any parser failure is the file's fault
        reason = _reason(exc)
        if reason == "not identified by this driver":  # Pillow's words for a bad mode or a zero size
            reason = "its header is malformed or declares no pixels"
        raise InvalidImageError(f"{shown} is not a valid {label} image: {reason}.") from None
    detected = _PILLOW_ALIASES.get(image.format or "", image.format)
    if detected != fmt:
        raise InvalidImageError(f"{shown} starts like a {label} image but its content is {image.format}.")

    width, height = image.size
    if width * height > limits.max_pixels:
        raise _pixel_limit_error(shown, limits, (width, height))
    if width <= 0 or height <= 0:
        raise InvalidImageError(f"{shown} has no pixels (its header says {width}x{height}).")
    bits = max(_MODE_BITS.get(image.mode, 32), _declared_bits(image, fmt, data))
    decoded = -(-width * height * bits // 8)
    if decoded > limits.max_decoded_bytes:
        raise _decoded_limit_error(shown, limits, (width, height), bits, decoded)

    try:
        frames = _count_frames(image, fmt, data) if count_frames else 1
        if max_side is not None and fmt == "JPEG":
            image.draft(image.mode, (max_side, max_side))
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _pixel_limit_error(shown, limits, (width, height)) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidImageError(f"{shown} is truncated or corrupt: {_reason(exc)}.") from None
    return image, fmt, frames


def open_image(data: bytes, *, name: str = "image", limits: ImageLimits = ImageLimits(),
               max_side: int | None = None) -> Image.Image:
    """Validate ``data`` and return its first frame, fully decoded (a JPEG at a reduced scale when only
    ``max_side`` pixels a side are needed, for thumbnails).

    Raises :class:`InvalidImageError` (one sentence naming ``name``) when the
    file is too large, empty, not a supported type, claims more pixels than
    ``limits.max_pixels``, or is truncated or corrupt.
    """
    image, _, _ = _open_checked(data, name, limits, count_frames=False, max_side=max_side)
    return image


def decode_image(data: bytes, *, name: str = "image", limits: ImageLimits = ImageLimits()) -> tuple[Image.Image, str]:
    """:func:`open_image` and the format it identified (``JPEG``, ``PNG``, ...)."""
    image, fmt, _ = _open_checked(data, name, limits, count_frames=False)
    return image, fmt


# ---------------------------------------------------------------------------
# inspection


def inspect_image(data: bytes, *, name: str = "image", limits: ImageLimits = ImageLimits()) -> ImageFacts:
    """Validate ``data`` (as :func:`open_image` does) and describe it.

    Decodes the first frame once and computes every hash from its RGB
    version (:func:`to_rgb`).
    """
    image, fmt, frames = _open_checked(data, name, limits, count_frames=True)
    try:
        rgb = to_rgb(image)
    except InvalidImageError as exc:
        raise InvalidImageError(f"{_display_name(name)}: {exc.message}") from None
    gray = rgb.convert("L")
    width, height = image.size
    return ImageFacts(
        sha256=hashlib.sha256(data).hexdigest(),
        size=len(data),
        format=fmt,
        media_type=SUPPORTED_FORMATS[fmt],
        mode=image.mode,
        width=width,
        height=height,
        frames=frames,
        metadata=metadata_summary(image, fmt),
        phash=hash_to_int(imagehash.phash(gray)),
        dhash=hash_to_int(imagehash.dhash(gray)),
        whash=whash_int(gray),
        colorhash=colorhash_int(rgb, gray),
        jpeg_quality=estimate_jpeg_quality(image) if fmt == "JPEG" else None,
    )
