"""Accept, validate and describe image files.

Everything that reads untrusted image bytes goes through :func:`open_image`
or :func:`inspect_image`. Both

1. check the byte size against :class:`ImageLimits`,
2. identify the type from magic bytes only (:func:`sniff_format`; a file name
   is never trusted),
3. open the file with exactly the Pillow plugin for that type and check that
   Pillow agrees,
4. read the dimensions from the header and refuse anything larger than
   ``ImageLimits.max_pixels`` *before* any pixel is decoded (our limit, not
   Pillow's global ``Image.MAX_IMAGE_PIXELS``, which is never touched), and
5. decode the first frame completely, so that truncated or corrupt files are
   refused here rather than in a detector.

Every refusal is an :class:`~vestige.errors.InvalidImageError` whose message
is one sentence naming the file. No global Pillow state is changed
(``Image.MAX_IMAGE_PIXELS``, ``ImageFile.LOAD_TRUNCATED_IMAGES``, warning
filters), so this module is safe to use from several threads.

:func:`inspect_image` also computes what ingest stores: SHA-256, a JSON-safe
metadata summary, perceptual hashes and, for JPEGs, an estimate of the
quality they were saved at. It decodes once and reuses the decoded frame for
every hash; the wavelet hash and colour hash are computed by faster code that
gives the same bits as ImageHash (see :func:`_whash_int`, :func:`_colorhash_int`
and the equality tests).
"""

from __future__ import annotations

import codecs
import functools
import hashlib
import html
import io
import math
import re
from dataclasses import dataclass
from typing import Any

import imagehash
import numpy as np
from PIL import ExifTags, Image, ImageChops, ImageCms, ImageFile, JpegImagePlugin

from vestige.errors import InvalidImageError
from vestige.jpegquality import JpegQualityEstimate, estimate_jpeg_quality

__all__ = [
    "SNIFF_BYTES",
    "SUPPORTED_FORMATS",
    "ImageFacts",
    "ImageLimits",
    "hamming_distance",
    "inspect_image",
    "open_image",
    "sniff_format",
    "to_rgb",
]

#: Pillow format name -> media type of every format Vestige accepts.
SUPPORTED_FORMATS: dict[str, str] = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
    "GIF": "image/gif",
}

#: How many leading bytes :func:`sniff_format` needs to see.
SNIFF_BYTES = 32

_LABELS = {"JPEG": "JPEG", "PNG": "PNG", "WEBP": "WebP", "TIFF": "TIFF", "BMP": "BMP", "GIF": "GIF"}
_SUPPORTED_LIST = "JPEG, PNG, WebP, TIFF, BMP, GIF"
# Pillow formats that are one of ours under another name (MPO: multi-picture
# JPEG as written by many cameras and phones; its first frame is a JPEG).
_PILLOW_ALIASES = {"MPO": "JPEG"}
# Sizes of the BMP DIB headers Pillow understands (OS/2 1.x/2.x, v1..v5).
_BMP_HEADER_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})

_MAX_TEXT_BYTES = 4096  # per metadata string value
_MAX_LIST_ITEMS = 32  # longer EXIF arrays (strip offsets, tables) are dropped
_MAX_TEXT_ENTRIES = 64
_MAX_XMP_SCAN = 1 << 20


# ---------------------------------------------------------------------------
# limits, facts


@dataclass(frozen=True)
class ImageLimits:
    """What an accepted image may be at most."""

    #: Largest file, in bytes.
    max_bytes: int = 100 * 2**20
    #: Largest first frame, in pixels (width * height), checked before decoding.
    max_pixels: int = 100_000_000


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
    #: JSON-safe summary: ``exif``, ``xmp``, ``text``, ``icc_profile``,
    #: ``has_thumbnail`` and, where present, ``dpi`` and ``jpeg``.
    metadata: dict
    #: ImageHash phash/dhash/whash (hash_size 8) as signed 64-bit integers:
    #: the 64 bits, first bit most significant, read as an int64.
    phash: int
    dhash: int
    whash: int
    #: ImageHash colorhash (binbits 3): 42 bits, so always non-negative.
    colorhash: int
    jpeg_quality: JpegQualityEstimate | None


def hamming_distance(a: int, b: int) -> int:
    """Number of differing bits between two hashes as stored in :class:`ImageFacts`."""
    return ((a ^ b) & 0xFFFF_FFFF_FFFF_FFFF).bit_count()


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
    return None


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
    if head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"mif1", b"msf1", b"avif", b"avis"):
        return "; it looks like a HEIF/AVIF image, convert it to JPEG or PNG first"
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
    return InvalidImageError(f"{what}; reduce its dimensions and try again.")


def _open_checked(
    data: bytes, name: str, limits: ImageLimits, *, count_frames: bool
) -> tuple[ImageFile.ImageFile, str, int]:
    """Validate ``data`` and return (decoded first frame, format, frame count)."""
    shown = _display_name(name)
    size = len(data)
    if size > limits.max_bytes:
        raise InvalidImageError(
            f"{shown} is {_human_bytes(size)}, larger than the limit of {_human_bytes(limits.max_bytes)}; "
            "upload a smaller file."
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

    try:
        frames = 1
        if count_frames:
            frames = max(1, int(getattr(image, "n_frames", 1)))
            if frames > 1:
                image.seek(0)
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise _pixel_limit_error(shown, limits, (width, height)) from None
    except MemoryError:
        raise
    except Exception as exc:
        raise InvalidImageError(f"{shown} is truncated or corrupt: {_reason(exc)}.") from None
    return image, fmt, frames


def open_image(data: bytes, *, name: str = "image", limits: ImageLimits = ImageLimits()) -> Image.Image:
    """Validate ``data`` and return its first frame, fully decoded.

    Raises :class:`InvalidImageError` (one sentence naming ``name``) when the
    file is too large, empty, not a supported type, claims more pixels than
    ``limits.max_pixels``, or is truncated or corrupt.
    """
    image, _, _ = _open_checked(data, name, limits, count_frames=False)
    return image


# ---------------------------------------------------------------------------
# RGB conversion


def _to_uint8(array: np.ndarray) -> np.ndarray:
    """Scale a single-channel integer or float array to 0..255."""
    if array.dtype == np.uint8:
        return array
    if np.issubdtype(array.dtype, np.floating):
        a = np.nan_to_num(array.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            a = a * 255.0
        elif not (lo >= 0.0 and hi <= 255.0):
            a = (a - lo) * (255.0 / (hi - lo)) if hi > lo else np.zeros_like(a)
        return np.clip(np.rint(a), 0, 255).astype(np.uint8)
    a = array.astype(np.int64)
    lo, hi = int(a.min()), int(a.max())
    if lo >= 0 and hi <= 255 and array.dtype.itemsize == 4:
        return a.astype(np.uint8)  # "I" images that only use 8 bits
    if lo >= 0 and (hi <= 65535 or array.dtype.itemsize == 2):
        return ((a * 255 + 32767) // 65535).astype(np.uint8)
    if hi == lo:
        return np.zeros(a.shape, np.uint8)
    return ((a - lo) * 255 // (hi - lo)).astype(np.uint8)


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGB", rgba.size, (255, 255, 255))
    background.paste(rgba.convert("RGB"), mask=rgba.getchannel("A"))
    return background


@functools.cache
def _lab_to_srgb() -> ImageCms.ImageCmsTransform:
    return ImageCms.buildTransform(ImageCms.createProfile("LAB"), ImageCms.createProfile("sRGB"), "LAB", "RGB")


def to_rgb(image: Image.Image) -> Image.Image:
    """An 8-bit RGB version of ``image`` for detectors and hashes.

    Alpha is composited on white (palette transparency included); 16-bit and
    32-bit integer and float greyscale are scaled to 0..255 rather than
    clipped; palette, greyscale, CMYK and YCbCr images are converted. An RGB
    image is returned as it is, not copied.
    """
    mode = image.mode
    if mode == "RGB":
        return image
    if mode == "P":
        if "transparency" in image.info or image.palette is not None and image.palette.mode == "RGBA":
            return _composite_on_white(image.convert("RGBA"))
        return image.convert("RGB")
    if mode in ("RGBA", "RGBa", "LA", "PA"):
        return _composite_on_white(image.convert("RGBA"))
    if mode == "La":  # premultiplied; Pillow only un-premultiplies it to LA
        return _composite_on_white(image.convert("LA").convert("RGBA"))
    if mode == "L" and "transparency" in image.info:
        return _composite_on_white(image.convert("RGBA"))
    if mode in ("1", "L", "CMYK", "YCbCr", "HSV", "RGBX"):
        return image.convert("RGB")
    if mode.startswith("I") or mode == "F":
        gray = Image.fromarray(_to_uint8(np.asarray(image)))
        return gray.convert("RGB")
    if mode == "LAB":  # CIELab TIFFs; a plain convert would copy the channels as they are
        try:
            return ImageCms.applyTransform(image, _lab_to_srgb())
        except (ImportError, OSError, ImageCms.PyCMSError):
            pass
    try:
        return image.convert("RGB")
    except ValueError:
        raise InvalidImageError(f"The image's colour mode {mode} cannot be converted to RGB.") from None


# ---------------------------------------------------------------------------
# hashes


def _bits_to_int(bits: np.ndarray) -> int:
    flat = np.asarray(bits, dtype=bool).ravel()
    n = flat.size
    value = int.from_bytes(np.packbits(flat).tobytes(), "big") >> ((-n) % 8)
    if n == 64 and value >= 1 << 63:
        value -= 1 << 64
    return value


def _hash_to_int(h: imagehash.ImageHash) -> int:
    return _bits_to_int(h.hash)


#: Largest square side for which a whash tie is resolved by ImageHash itself.
_WHASH_REFERENCE_MAX_SCALE = 2048


def _whash_int(gray: Image.Image) -> int:
    """``imagehash.whash(image)`` (haar, hash_size 8) of an "L" image, faster.

    ImageHash scales the image to a power-of-two square, subtracts its mean
    (by zeroing the top Haar LL coefficient), takes the Haar LL band at
    ``hash_size`` x ``hash_size`` and compares it with its median. That band
    is each block's pixel sum times a positive constant, minus a constant, so
    comparing the exact integer block sums with their median gives the same
    bits: ImageHash's floating-point error is many orders of magnitude below
    the smallest gap between two different sums.

    Only where a block sum *equals* the median does ImageHash's answer depend
    on floating-point noise. Such images are handed to ImageHash itself while
    the square is at most :data:`_WHASH_REFERENCE_MAX_SCALE` pixels a side
    (0.3 s and 200 MB at 2048); above that (short side 4096 or more) the
    noise-free bits are returned, as ImageHash would need seconds and
    gigabytes for them.
    """
    hash_size = 8
    natural = 2 ** int(np.log2(min(gray.size)))
    scale = max(natural, hash_size)
    square = gray.resize((scale, scale), Image.Resampling.LANCZOS)
    block = scale // hash_size
    pixels = np.asarray(square)
    sums = pixels.reshape(hash_size, block, hash_size, block).sum(axis=(1, 3), dtype=np.int64)
    median = np.median(sums)
    if np.any(sums == median) and scale <= _WHASH_REFERENCE_MAX_SCALE:
        return _hash_to_int(imagehash.whash(square))  # same scale, so the same computation
    return _bits_to_int(sums > median)


# Colour-hash classes as 8-bit codes, so that one Pillow histogram counts them all:
# hue bin (0..5, as numpy.histogram over linspace(0, 255, 7) assigns a hue byte)
# plus 8 * saturation class (0 grey: s < 85, 1 faint: s < 170, 2 neither: s == 170,
# 3 bright: s > 170); 255 marks black pixels (intensity < 32), whatever their colour.
_HUE_EDGES = np.linspace(0, 255, 6 + 1)
_HUE_LUT = [min(int(np.searchsorted(_HUE_EDGES, v, side="right")) - 1, 5) for v in range(256)]
_SAT_LUT = [8 * (0 if s < 256 // 3 else 1 if s < 256 * 2 // 3 else 2 if s == 256 * 2 // 3 else 3) for s in range(256)]
_BLACK_LUT = [255 if v < 256 // 8 else 0 for v in range(256)]


def _colorhash_int(rgb: Image.Image, gray: Image.Image) -> int:
    """``imagehash.colorhash(rgb, binbits=3)``, counted with one Pillow histogram.

    ImageHash builds boolean masks and numpy histograms over every pixel; here
    each pixel gets a class code through lookup tables in C and a single
    ``histogram()`` counts the codes. The fractions are then formed with the
    same float operations as ImageHash, so the bits are identical.
    """
    binbits = 3
    hue, sat, _ = rgb.convert("HSV").split()
    code = ImageChops.add(hue.point(_HUE_LUT), sat.point(_SAT_LUT))
    code.paste(255, mask=gray.point(_BLACK_LUT))
    hist = code.histogram()
    n = rgb.width * rgb.height
    frac_black = hist[255] / n
    frac_gray = sum(hist[0:8]) / n
    c = max(1, sum(hist[8:32]))
    maxvalue = 2**binbits
    values = [min(maxvalue - 1, int(frac_black * maxvalue)), min(maxvalue - 1, int(frac_gray * maxvalue))]
    for count in hist[8:14] + hist[24:30]:  # faint hue bins, then bright ones
        values.append(min(maxvalue - 1, int(count * maxvalue * 1.0 / c)))
    bits = [v // (2 ** (binbits - i - 1)) % 2 ** (binbits - i) > 0 for v in values for i in range(binbits)]
    return _bits_to_int(np.array(bits))


# ---------------------------------------------------------------------------
# metadata


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
            if entry is not None:
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
_XMP_OPEN = re.compile(r"<([\w.-]+):(" + "|".join(_XMP_FIELDS) + r")\b([^>]*?)(/?)>")
_XMP_ATTR = re.compile(r"\b[\w.-]+:(" + "|".join(_XMP_FIELDS) + r")\s*=\s*(?:\"([^\"]*)\"|'([^']*)')")
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

    for match in _XMP_ATTR.finditer(text):
        add(match.group(1), match.group(2) if match.group(2) is not None else match.group(3))
    for match in _XMP_OPEN.finditer(text):
        prefix, key, attrs, self_closing = match.groups()
        value = ""
        if not self_closing:
            end = text.find(f"</{prefix}:{key}", match.end())
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


def _metadata(image: Image.Image, fmt: str) -> dict:
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
        metadata=_metadata(image, fmt),
        phash=_hash_to_int(imagehash.phash(gray)),
        dhash=_hash_to_int(imagehash.dhash(gray)),
        whash=_whash_int(gray),
        colorhash=_colorhash_int(rgb, gray),
        jpeg_quality=estimate_jpeg_quality(image) if fmt == "JPEG" else None,
    )
