"""vestige.evidence.imagefile and vestige.evidence.jpegquality: validation, facts, hashes, quality.

Every image here is generated with Pillow/numpy; nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
import time
import warnings
import zlib

import imagehash
import numpy as np
import pytest
from PIL import Image, PngImagePlugin, TiffImagePlugin, features

from vestige.core.errors import InvalidImageError
from vestige.evidence.imageconvert import to_rgb
from vestige.evidence.imagefile import (
    MAX_COUNTED_FRAMES,
    SUPPORTED_FORMATS,
    ImageLimits,
    _count_gif_frames,
    inspect_image,
    open_image,
    sniff_format,

)
from vestige.evidence.imagehashes import colorhash_int, whash_int
from vestige.evidence.jpegquality import (
    STANDARD_CHROMINANCE,
    STANDARD_LUMINANCE,
    estimate_jpeg_quality,
    scaled_tables,
)
from vestige.evidence.neardup import hamming

needs_webp = pytest.mark.skipif(not features.check("webp"), reason="Pillow built without WebP")

# ---------------------------------------------------------------------------
# helpers


def picture(seed: int, size: tuple[int, int] = (256, 256)) -> Image.Image:
    """A smooth, photo-like RGB picture: upsampled random colour field plus grain."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    smooth = np.asarray(coarse.resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    grain = rng.integers(-6, 7, smooth.shape, dtype=np.int16)
    return Image.fromarray(np.clip(smooth + grain, 0, 255).astype(np.uint8))


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def ref_int(h: imagehash.ImageHash) -> int:
    """An ImageHash as ImageFacts stores it (64-bit hashes as signed int64)."""
    value = int(str(h), 16)
    if h.hash.size == 64 and value >= 1 << 63:
        value -= 1 << 64
    return value


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png(width: int, height: int, idat: bytes | None = None) -> bytes:
    """A 1-bit greyscale PNG; by default one row of IDAT, whatever the height claims."""
    if idat is None:
        idat = zlib.compress(b"\x00" * (1 + (width + 7) // 8))
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b"")


def handmade_bmp(width: int, height: int) -> bytes:
    header = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 24, 0, 0, 2835, 2835, 0, 0)
    return b"BM" + struct.pack("<IHHI", 54 + 64, 0, 0, 54) + header + b"\x00" * 64


def handmade_gif(width: int, height: int) -> bytes:
    screen = struct.pack("<HHBBB", width, height, 0, 0, 0)
    descriptor = b"," + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + descriptor + b"\x02\x02\x44\x01\x00;"


def handmade_tiff(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (273, 4, 1, 100), (279, 4, 1, 10)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries)
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x00" * 20


def minimal_gif(frames: int) -> bytes:
    """A 1x1 GIF of ``frames`` frames, 23 bytes each."""
    frame = b"!\xf9\x04\x00\x00\x00\x00\x00," + struct.pack("<HHHHB", 0, 0, 1, 1, 0) + b"\x02\x02\x44\x01\x00"
    return b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\x00\x00\x00\xff\xff\xff" + frame * frames + b";"


def tiff_pages(pages: int) -> bytes:
    """A TIFF of ``pages`` 1x1 greyscale pages, about 100 bytes each."""
    entries = [(256, 3, 1), (257, 3, 1), (258, 3, 8), (262, 3, 1), (273, 4, 0), (277, 3, 1), (278, 3, 1), (279, 4, 1)]
    ifd_size = 2 + 12 * len(entries) + 4
    strip = 8 + ifd_size * pages
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for page in range(pages):
        out += struct.pack("<H", len(entries))
        for tag, kind, value in entries:
            if kind == 4:
                out += struct.pack("<HHII", tag, kind, 1, strip if tag == 273 else value)
            else:
                out += struct.pack("<HHIHH", tag, kind, 1, value, 0)
        out += struct.pack("<I", 8 + ifd_size * (page + 1) if page < pages - 1 else 0)
    return bytes(out + b"\x07")


def raises_invalid(data: bytes, **kwargs) -> str:
    with pytest.raises(InvalidImageError) as info:
        inspect_image(data, **kwargs)
    return info.value.message


# ---------------------------------------------------------------------------
# formats and sniffing

ROUND_TRIPS = [
    # format, source mode, save options, decoded mode
    ("JPEG", "RGB", {"quality": 90}, "RGB"),
    ("JPEG", "L", {}, "L"),
    ("PNG", "RGB", {}, "RGB"),
    ("PNG", "RGBA", {}, "RGBA"),
    ("PNG", "L", {}, "L"),
    pytest.param("WEBP", "RGB", {"lossless": True}, "RGB", marks=needs_webp),
    pytest.param("WEBP", "RGBA", {"lossless": True}, "RGBA", marks=needs_webp),
    ("TIFF", "RGB", {}, "RGB"),
    ("TIFF", "RGB", {"compression": "tiff_lzw"}, "RGB"),
    ("BMP", "RGB", {}, "RGB"),
    ("GIF", "RGB", {}, "P"),
]


@pytest.mark.parametrize(("fmt", "mode", "options", "decoded_mode"), ROUND_TRIPS)
def test_each_format_round_trips(fmt, mode, options, decoded_mode):
    source = picture(1, (97, 61)).convert(mode)
    if mode == "RGBA":
        source.putalpha(Image.linear_gradient("L").resize(source.size))
    data = encode(source, fmt, **options)

    facts = inspect_image(data, name=f"sample.{fmt.lower()}")

    assert facts.format == fmt
    assert facts.media_type == SUPPORTED_FORMATS[fmt]
    assert (facts.width, facts.height) == (97, 61)
    assert facts.mode == decoded_mode
    assert facts.frames == 1
    assert facts.size == len(data)
    assert facts.sha256 == hashlib.sha256(data).hexdigest()
    json.dumps(facts.metadata, allow_nan=False)
    image = open_image(data)
    assert image.size == (97, 61)
    assert to_rgb(image).mode == "RGB"


def _bmp_head() -> bytes:
    return encode(Image.new("RGB", (2, 2)), "BMP")[:32]


SNIFFS = [
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "PNG"),
    (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "WEBP"),
    (b"II*\x00\x08\x00\x00\x00", "TIFF"),
    (b"MM\x00*\x00\x00\x00\x08", "TIFF"),
    (b"GIF87a\x01\x00\x01\x00", "GIF"),
    (b"GIF89a\x01\x00\x01\x00", "GIF"),
    (_bmp_head(), "BMP"),
    (b"BMW owners club minutes, 2024\n", None),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", None),
    (b"\xff\xd8", None),
    (b"GIF90a", None),
    (b"II+\x00\x10\x00\x00\x00", None),  # BigTIFF is not accepted
    (b"", None),
]


@pytest.mark.parametrize(("head", "expected"), SNIFFS)
def test_sniff_format_reads_magic_bytes(head, expected):
    assert sniff_format(head) == expected


def test_sniffing_ignores_the_file_name():
    data = encode(picture(2, (40, 30)), "PNG")
    facts = inspect_image(data, name="holiday.jpg")
    assert facts.format == "PNG"
    assert facts.media_type == "image/png"
    assert facts.jpeg_quality is None


@pytest.mark.parametrize(
    "content",
    [
        b"Steps: 20, Sampler: Euler a, CFG scale: 7\nSeed: 1234\n",
        '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"></svg>'.encode(),
        "caf\u00e9 \u00fcber na\u00efve r\u00e9sum\u00e9\n".encode(),
    ],
)
def test_a_text_file_is_refused_as_text(content):
    message = raises_invalid(content, name="notes.png")
    assert "notes.png" in message
    assert "not a supported image type" in message
    assert "text" in message


def test_binary_junk_is_refused_without_the_text_hint():
    message = raises_invalid(bytes(range(256)) * 4, name="junk.bin")
    assert "not a supported image type" in message
    assert "text" not in message


# ---------------------------------------------------------------------------
# refusals


def test_truncated_jpeg_is_refused():
    data = encode(picture(3), "JPEG", quality=90)
    message = raises_invalid(data[: len(data) // 2], name="half.jpg")
    assert message.startswith("half.jpg is truncated or corrupt: ")
    with pytest.raises(InvalidImageError):
        open_image(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("fmt", "cut"),
    [("JPEG", 40), ("PNG", 0.5), ("PNG", 60), ("GIF", 0.5), ("TIFF", 0.5), ("BMP", 0.5)],
)
def test_truncated_files_are_refused(fmt, cut):
    data = encode(picture(4, (64, 64)), fmt)
    end = int(len(data) * cut) if isinstance(cut, float) else cut
    with pytest.raises(InvalidImageError):
        inspect_image(data[:end], name=f"cut.{fmt.lower()}")


BOMBS = [
    ("PNG", handmade_png),
    ("BMP", handmade_bmp),
    ("GIF", handmade_gif),
    ("TIFF", handmade_tiff),
]


@pytest.mark.parametrize(("fmt", "build"), BOMBS)
def test_decompression_bomb_is_refused_from_the_header(fmt, build):
    data = build(60_000, 60_000)
    assert len(data) < 1000
    assert sniff_format(data) == fmt
    started = time.perf_counter()
    message = raises_invalid(data, name="bomb")
    assert time.perf_counter() - started < 0.5  # nothing was decoded or allocated
    assert "60000x60000" in message  # our own check, not Pillow's global one
    assert "pixel" in message and "limit" in message


def test_pixel_limit_is_configurable():
    data = encode(picture(5, (40, 40)), "PNG")
    message = raises_invalid(data, name="p.png", limits=ImageLimits(max_pixels=1000))
    assert "40x40" in message and "1,000" in message
    assert inspect_image(data, limits=ImageLimits(max_pixels=1600)).width == 40


def test_pillows_global_bomb_threshold_is_not_used():
    # 90 million pixels: above Pillow's warning threshold, below our 100 million
    width, height = 10_000, 9_000
    assert width * height > Image.MAX_IMAGE_PIXELS
    before = Image.MAX_IMAGE_PIXELS
    data = handmade_png(width, height, zlib.compress(b"\x00" * (height * (1 + (width + 7) // 8))))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        image = open_image(data)
    assert image.size == (width, height)
    assert Image.MAX_IMAGE_PIXELS == before


def test_oversize_and_empty_files_are_refused():
    data = encode(picture(6, (64, 64)), "PNG")
    message = raises_invalid(data, name="big.png", limits=ImageLimits(max_bytes=1024))
    assert "big.png" in message and "limit" in message
    assert "1 KiB" in message
    message = raises_invalid(b"", name="empty.png")
    assert "empty.png" in message and "empty" in message


@pytest.mark.parametrize("build", [handmade_png, handmade_bmp, handmade_gif, handmade_tiff])
@pytest.mark.parametrize("size", [(0, 10), (10, 0)])
def test_zero_sized_image_is_refused(build, size):
    message = raises_invalid(build(*size), name="zero")
    assert message.startswith("zero is not a valid ")
    assert "no pixels" in message


def _refusals():
    good = encode(picture(7), "JPEG")
    return [
        ("oversize", good, {"limits": ImageLimits(max_bytes=100)}),
        ("empty", b"", {}),
        ("text", b"hello world\nthis is text\n", {}),
        ("junk", b"\x00\x01\x02\x03" * 20, {}),
        ("pdf", b"%PDF-1.4\n1 0 obj\n", {}),
        ("truncated", good[: len(good) // 2], {}),
        ("header-only", good[:30], {}),
        ("pixels", handmade_png(60_000, 60_000), {}),
        ("few-pixels", good, {"limits": ImageLimits(max_pixels=10)}),
        ("zero", handmade_png(0, 5), {}),
        ("bad-idat", handmade_png(8, 8, idat=b"this is not a zlib stream"), {}),
    ]


@pytest.mark.parametrize("name", ["upload 7.png", "evil\nname\r\n.png", "x" * 500])
@pytest.mark.parametrize(("case", "data", "kwargs"), _refusals(), ids=[c[0] for c in _refusals()])
def test_every_refusal_is_one_line_naming_the_file(case, data, kwargs, name):
    message = raises_invalid(data, name=name, **kwargs)
    assert "\n" not in message and "\r" not in message
    assert "Traceback" not in message
    assert message.endswith(".")
    assert message[0] != " "
    assert len(message) < 600
    shown = " ".join(name.split())
    assert shown[:100] in message


# ---------------------------------------------------------------------------
# frames and RGB conversion


def test_animated_gif_counts_frames_and_opens_the_first():
    frames = [Image.new("RGB", (20, 10), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    facts = inspect_image(data)
    assert facts.frames == 3
    assert (facts.width, facts.height) == (20, 10)
    first = to_rgb(open_image(data))
    assert first.getpixel((5, 5)) == (255, 0, 0)


def _gif_variants():
    frames = [picture(seed, (24, 16)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16) for seed in range(4)]
    rgb_frames = [Image.new("RGB", (8, 8), (40 * i, 255 - 40 * i, 7)) for i in range(5)]
    return [
        ("single", encode(frames[0], "GIF")),
        ("local-palettes", encode(frames[0], "GIF", save_all=True, append_images=frames[1:], loop=0)),
        (
            "comment-duration",
            encode(
                rgb_frames[0],
                "GIF",
                save_all=True,
                append_images=rgb_frames[1:],
                comment=b"hello",
                duration=[50, 60, 70, 80, 90],
                disposal=2,
            ),
        ),
        ("transparency", encode(frames[1], "GIF", save_all=True, append_images=frames[2:], transparency=0)),
        ("minimal", minimal_gif(7)),
    ]


@pytest.mark.parametrize(("label", "data"), _gif_variants(), ids=[g[0] for g in _gif_variants()])
def test_gif_frame_scanner_agrees_with_pillow(label, data):
    expected = Image.open(io.BytesIO(data)).n_frames
    assert _count_gif_frames(data, 10_000) == expected
    assert inspect_image(data).frames == expected


@pytest.mark.parametrize(
    ("build", "count"),
    [(minimal_gif, 3), (tiff_pages, 3), (minimal_gif, 5000), (tiff_pages, 1500)],
)
def test_frame_counting_is_capped(build, count):
    data = build(count)
    started = time.perf_counter()
    facts = inspect_image(data)
    assert time.perf_counter() - started < 1.0
    assert facts.frames == min(count, MAX_COUNTED_FRAMES)
    assert (facts.width, facts.height) == (1, 1)


def _palette_with_transparency() -> Image.Image:
    image = Image.new("P", (4, 4), 1)
    image.putpalette([0, 0, 0, 10, 20, 30] + [0] * 762)
    image.info["transparency"] = 1
    return image


TO_RGB = [
    # name, image, expected pixel at (0, 0)
    ("RGB", Image.new("RGB", (4, 4), (1, 2, 3)), (1, 2, 3)),
    ("RGBA transparent", Image.new("RGBA", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
    ("RGBA half", Image.new("RGBA", (4, 4), (0, 0, 0, 128)), (127, 127, 127)),
    ("LA transparent", Image.new("LA", (4, 4), (0, 0)), (255, 255, 255)),
    ("La transparent", Image.new("La", (4, 4), (0, 0)), (255, 255, 255)),
    ("RGBa transparent", Image.new("RGBa", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
    ("P transparent", _palette_with_transparency(), (255, 255, 255)),
    ("L", Image.new("L", (4, 4), 77), (77, 77, 77)),
    ("1", Image.new("1", (4, 4), 1), (255, 255, 255)),
    ("CMYK", Image.new("CMYK", (4, 4), (0, 0, 0, 0)), (255, 255, 255)),
    ("I;16 full", Image.fromarray(np.full((4, 4), 65535, np.uint16)), (255, 255, 255)),
    ("I;16 half", Image.fromarray(np.full((4, 4), 32768, np.uint16)), (128, 128, 128)),
    ("I 8-bit", Image.fromarray(np.full((4, 4), 200, np.int32)), (200, 200, 200)),
    ("F unit", Image.fromarray(np.full((4, 4), 0.5, np.float32)), (128, 128, 128)),
]


@pytest.mark.parametrize(("label", "image", "expected"), TO_RGB, ids=[t[0] for t in TO_RGB])
def test_to_rgb(label, image, expected):
    rgb = to_rgb(image)
    assert rgb.mode == "RGB"
    assert rgb.size == image.size
    assert rgb.getpixel((0, 0)) == expected


LAB_COLOURS = [
    ((255, 128, 128), (255, 255, 255)),  # L=100: white
    ((0, 128, 128), (0, 0, 0)),  # L=0: black
    ((128, 128, 0), (0, 130, 255)),  # b=-128: blue
]


@pytest.mark.parametrize(("lab", "rgb"), LAB_COLOURS)
def test_lab_is_converted_through_a_colour_transform(lab, rgb):
    converted = to_rgb(Image.new("LAB", (2, 2), lab)).getpixel((0, 0))
    assert all(abs(a - b) <= 4 for a, b in zip(converted, rgb)), converted


def test_sixteen_bit_png_is_scaled_not_clipped():
    ramp = (np.arange(64, dtype=np.uint32).reshape(8, 8) * 1000).astype(np.uint16)
    image = open_image(encode(Image.fromarray(ramp), "PNG"))
    assert image.mode.startswith("I")
    values = np.asarray(to_rgb(image))[..., 0]
    assert values.max() == round(63000 * 255 / 65535)
    assert len(np.unique(values)) > 50


# ---------------------------------------------------------------------------
# hashes


def _flat(value):
    return Image.new("RGB", (128, 128), value)


def _document():
    # mostly white page with a few dark lines: block sums tie at the median
    page = np.full((300, 220, 3), 255, np.uint8)
    page[40:44, 20:200] = 0
    page[90:93, 20:150] = 30
    return Image.fromarray(page)


def _hue_sweep():
    hue = np.tile(np.arange(256, dtype=np.uint8), (64, 1))
    sat = np.repeat(np.linspace(0, 255, 64).astype(np.uint8)[:, None], 256, 1)
    return Image.merge("HSV", [Image.fromarray(c) for c in (hue, sat, np.full_like(hue, 220))]).convert("RGB")


def _noise(seed, size=(64, 48)):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (*size[::-1], 3), dtype=np.uint8))


HASH_IMAGES = [
    ("picture", picture(10)),
    ("picture-wide", picture(11, (300, 40))),
    ("flat-grey", _flat((128, 128, 128))),
    ("flat-black", _flat((0, 0, 0))),
    ("document", _document()),
    ("hue-sweep", _hue_sweep()),
    ("noise", _noise(12)),
    ("tiny", _noise(13, (5, 3))),
    ("checkerboard", Image.fromarray(((np.indices((64, 64)).sum(0) // 8) % 2 * 255).astype(np.uint8)).convert("RGB")),
    ("rgba", Image.merge("RGBA", (*picture(14, (80, 80)).split(), _noise(15, (80, 80)).getchannel(0)))),
    ("palette", picture(16, (70, 50)).convert("P")),
    ("bilevel", _noise(17, (90, 90)).convert("1")),
]


@pytest.mark.parametrize(("label", "image"), HASH_IMAGES, ids=[h[0] for h in HASH_IMAGES])
def test_hashes_equal_imagehash(label, image):
    data = encode(image, "PNG")
    facts = inspect_image(data)
    rgb = to_rgb(open_image(data))
    assert facts.phash == ref_int(imagehash.phash(rgb))
    assert facts.dhash == ref_int(imagehash.dhash(rgb))
    assert facts.whash == ref_int(imagehash.whash(rgb))
    assert facts.colorhash == ref_int(imagehash.colorhash(rgb, binbits=3))
    for value in (facts.phash, facts.dhash, facts.whash):
        assert -(1 << 63) <= value < 1 << 63
    assert 0 <= facts.colorhash < 1 << 42


def test_fast_whash_and_colorhash_equal_imagehash_on_random_images():
    rng = np.random.default_rng(99)
    for i in range(60):
        width, height = (int(v) for v in rng.integers(1, 200, 2))
        kind = i % 4
        if kind == 0:  # noise
            pixels = rng.integers(0, 256, (height, width, 3))
        elif kind == 1:  # few levels: many exact ties
            pixels = rng.integers(0, 3, (height, width, 3)) * 127
        elif kind == 2:  # one tinted gradient
            pixels = rng.random((height, width, 1)) * rng.integers(1, 256, (1, 1, 3))
        else:  # mostly white with colour specks
            pixels = np.where(rng.random((height, width, 1)) < 0.7, 255, rng.integers(0, 256, (height, width, 3)))
        rgb = Image.fromarray(pixels.astype(np.uint8), "RGB")
        gray = rgb.convert("L")
        assert whash_int(gray) == ref_int(imagehash.whash(rgb)), (i, width, height)
        assert colorhash_int(rgb, gray) == ref_int(imagehash.colorhash(rgb)), (i, width, height)


def test_large_whash_tie_does_not_fall_back_to_imagehash(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("imagehash.whash called for a 4096-pixel square")

    monkeypatch.setattr(imagehash, "whash", refuse)
    assert whash_int(Image.new("L", (4096, 4100), 200)) == 0  # what ImageHash gives a flat image


def test_phash_is_close_for_a_re_encode_and_far_for_another_picture():
    original = inspect_image(encode(picture(20), "JPEG", quality=95))
    decoded = open_image(encode(picture(20), "JPEG", quality=95))
    re_encoded = inspect_image(encode(decoded, "JPEG", quality=90))
    assert hamming(original.phash, re_encoded.phash) <= 4
    assert hamming(original.dhash, re_encoded.dhash) <= 6
    for seed in (21, 22, 23):
        other = inspect_image(encode(picture(seed), "JPEG", quality=95))
        assert hamming(original.phash, other.phash) >= 16


def test_hamming_distance_handles_signed_hashes():
    assert hamming(-1, 0) == 64
    assert hamming(-(1 << 63), 0) == 1
    assert hamming(5, 6) == 2


# ---------------------------------------------------------------------------
# metadata


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x010F] = "VestigeCam"  # Make
    exif[0x0110] = "Model X\x00\x00"  # Model, with NULs to strip
    exif[0x0131] = "Stable Diffusion WebUI"  # Software
    ifd = exif.get_ifd(0x8769)  # Exif IFD
    ifd[0x9003] = "2024:01:02 03:04:05"  # DateTimeOriginal
    ifd[0x9286] = b"ASCII\x00\x00\x00a photo of a cat"  # UserComment
    ifd[0x927C] = b"\x00\x01binary maker note\xff"  # MakerNote: never in the summary
    return exif


EXIF_FORMATS = [
    "JPEG",
    "PNG",
    pytest.param("WEBP", marks=needs_webp),
    "TIFF",
]


@pytest.mark.parametrize("fmt", EXIF_FORMATS)
def test_exif_fields_appear_in_metadata(fmt):
    data = encode(picture(30, (64, 64)), fmt, exif=_exif())
    exif = inspect_image(data).metadata["exif"]
    assert exif["Make"] == "VestigeCam"
    assert exif["Model"] == "Model X"
    assert exif["Software"] == "Stable Diffusion WebUI"
    if fmt != "TIFF":
        assert exif["DateTimeOriginal"] == "2024:01:02 03:04:05"
        assert exif["UserComment"] == "a photo of a cat"
    assert "MakerNote" not in exif


def test_gps_rationals_and_odd_values_are_json_safe():
    exif = Image.Exif()
    rational = TiffImagePlugin.IFDRational
    exif[0x011A] = rational(0, 0)  # XResolution 0/0: not a number, dropped
    exif[0x011B] = rational(300, 1)  # YResolution
    exif[0x010E] = "caption\x00with a NUL"  # ImageDescription
    gps = exif.get_ifd(0x8825)
    gps[1] = "N"  # GPSLatitudeRef
    gps[2] = (rational(51, 1), rational(30, 1), rational(1234, 100))  # GPSLatitude
    data = encode(picture(36, (16, 16)), "JPEG", exif=exif)
    meta = inspect_image(data).metadata
    assert meta["exif"]["GPSLatitudeRef"] == "N"
    assert meta["exif"]["GPSLatitude"] == [51.0, 30.0, 12.34]
    assert meta["exif"]["YResolution"] == 300.0
    assert "XResolution" not in meta["exif"]
    assert meta["exif"]["ImageDescription"] == "captionwith a NUL"
    assert _json_safe(meta)
    json.dumps(meta, allow_nan=False)


def _json_safe(value) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _json_safe(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_json_safe(v) for v in value)
    if isinstance(value, str):
        return "\x00" not in value
    return value is None or isinstance(value, (bool, int, float))


def test_png_text_chunks_appear_in_metadata():
    info = PngImagePlugin.PngInfo()
    info.add_text("parameters", "a cat in a hat\nSteps: 20, Sampler: Euler a, Seed: 42")
    info.add_text("Software", "ComfyUI", zip=True)
    info.add_itxt("Description", "caf\u00e9 \u00fcber", lang="fr")
    info.add_text("long", "y" * 10_000)
    data = encode(picture(31, (32, 32)), "PNG", pnginfo=info, icc_profile=b"not really an ICC profile")
    meta = inspect_image(data).metadata
    assert meta["text"]["parameters"] == "a cat in a hat\nSteps: 20, Sampler: Euler a, Seed: 42"
    assert meta["text"]["Software"] == "ComfyUI"
    assert meta["text"]["Description"] == "caf\u00e9 \u00fcber"
    assert len(meta["text"]["long"].encode()) == 4096
    assert meta["icc_profile"] is True
    assert meta["has_thumbnail"] is False
    assert _json_safe(meta)
    json.dumps(meta, allow_nan=False)


XMP = b"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmp:CreatorTool="Image Generator 3 &amp; Co" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
  xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/">
 <Iptc4xmpExt:DigitalSourceType>http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia</Iptc4xmpExt:DigitalSourceType>
 <dc:title xmlns:dc="http://purl.org/dc/elements/1.1/"><rdf:Alt><rdf:li xml:lang="x-default">A cat</rdf:li></rdf:Alt></dc:title>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"""


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", pytest.param("WEBP", marks=needs_webp)])
def test_xmp_fields_appear_in_metadata(fmt):
    image = picture(32, (32, 32))
    if fmt == "PNG":
        data = encode(image, fmt, pnginfo=_xmp_info(XMP.decode()))
    else:
        data = encode(image, fmt, xmp=XMP)
    meta = inspect_image(data).metadata
    assert meta["has_xmp"] is True
    assert meta["xmp"]["DigitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert meta["xmp"]["CreatorTool"] == "Image Generator 3 & Co"
    assert meta["xmp"]["title"] == "A cat"
    assert "XML:com.adobe.xmp" not in meta["text"]
    assert _json_safe(meta)


@pytest.mark.parametrize(
    "packet",
    [
        "<a:Make " * 120_000,  # unterminated tags
        "a." * 500_000,  # word runs without the colon a field needs
        "<x:CreatorTool>" * 60_000,  # elements that never close
        ":Make='" * 100_000,  # attribute values that never close
    ],
    ids=["open-tags", "word-runs", "unclosed-elements", "unclosed-values"],
)
def test_hostile_xmp_is_scanned_quickly(packet):
    data = encode(picture(35, (16, 16)), "PNG", pnginfo=_xmp_info(packet))
    started = time.perf_counter()
    meta = inspect_image(data).metadata
    assert time.perf_counter() - started < 1.0
    assert meta["has_xmp"] is True
    assert _json_safe(meta)


def _xmp_info(packet: str) -> PngImagePlugin.PngInfo:
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", packet)
    return info


def test_jpeg_comment_and_structure_appear_in_metadata():
    data = encode(picture(33, (32, 32)), "JPEG", comment=b"made by hand", progressive=True, subsampling=0)
    meta = inspect_image(data).metadata
    assert meta["text"]["comment"] == "made by hand"
    assert meta["jpeg"] == {"progressive": True, "subsampling": "4:4:4"}


def test_jpeg_quality_is_reported_for_jpeg_only():
    jpeg = inspect_image(encode(picture(34, (64, 64)), "JPEG", quality=83))
    assert jpeg.jpeg_quality is not None
    assert (jpeg.jpeg_quality.quality, jpeg.jpeg_quality.exact, jpeg.jpeg_quality.tables) == (83, True, 2)
    assert inspect_image(encode(picture(34, (64, 64)), "PNG")).jpeg_quality is None


# ---------------------------------------------------------------------------
# JPEG quality


@pytest.mark.parametrize("quality", [10, 50, 75, 90, 95, 100])
def test_pillow_qualities_are_estimated_exactly(quality):
    image = Image.open(io.BytesIO(encode(picture(40, (48, 48)), "JPEG", quality=quality)))
    estimate = estimate_jpeg_quality(image)
    assert estimate is not None
    assert estimate.quality == quality
    assert estimate.exact is True
    assert estimate.error == 0.0
    assert estimate.tables == 2


def test_grayscale_jpeg_has_one_table():
    image = Image.open(io.BytesIO(encode(picture(41, (16, 16)).convert("L"), "JPEG", quality=60)))
    estimate = estimate_jpeg_quality(image)
    assert (estimate.quality, estimate.exact, estimate.tables) == (60, True, 1)


def test_pillow_tables_are_in_natural_order():
    image = Image.open(io.BytesIO(encode(picture(42, (16, 16)), "JPEG", quality=50)))
    assert list(image.quantization[0]) == list(STANDARD_LUMINANCE)
    assert list(image.quantization[1]) == list(STANDARD_CHROMINANCE)
    assert STANDARD_LUMINANCE[:8] == (16, 11, 10, 16, 24, 40, 51, 61)  # first row of table K.1


ZIGZAG = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
    12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
    35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
    58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
]  # fmt: skip


def test_tables_written_in_zigzag_order_do_not_match_exactly():
    luminance, chrominance = scaled_tables(75)
    zigzagged = [[table[i] for i in ZIGZAG] for table in (luminance, chrominance)]
    image = Image.open(io.BytesIO(encode(picture(43, (16, 16)), "JPEG", qtables=zigzagged)))
    estimate = estimate_jpeg_quality(image)
    assert estimate.exact is False


def test_custom_tables_give_the_nearest_quality():
    luminance, chrominance = scaled_tables(80)
    tweaked = [list(luminance), list(chrominance)]
    tweaked[0][5] += 3
    tweaked[1][40] -= 2
    image = Image.open(io.BytesIO(encode(picture(44, (16, 16)), "JPEG", qtables=tweaked)))
    estimate = estimate_jpeg_quality(image)
    assert estimate.quality == 80
    assert estimate.exact is False
    assert estimate.error == pytest.approx(5 / 128)
    assert estimate.tables == 2


def test_flat_custom_table_is_not_exact():
    image = Image.open(io.BytesIO(encode(picture(45, (16, 16)), "JPEG", qtables=[[4] * 64, [6] * 64])))
    estimate = estimate_jpeg_quality(image)
    assert estimate.exact is False
    assert 80 <= estimate.quality <= 100


def test_scaled_tables_follow_ijg_formula():
    assert scaled_tables(50) == (STANDARD_LUMINANCE, STANDARD_CHROMINANCE)
    assert set(scaled_tables(100)[0]) == {1}
    assert set(scaled_tables(1)[0]) == {255}
    assert max(scaled_tables(1, force_baseline=False)[0]) == (121 * 5000 + 50) // 100
    assert scaled_tables(75)[0][0] == (16 * 50 + 50) // 100


def test_non_jpeg_has_no_quality():
    assert estimate_jpeg_quality(Image.open(io.BytesIO(encode(picture(46, (8, 8)), "PNG")))) is None
    assert estimate_jpeg_quality(Image.new("RGB", (4, 4))) is None
