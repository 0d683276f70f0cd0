"""A corpus of hostile files, made at test time (nothing is committed), with what Vestige must do with each.

``make_corpus(folder)`` writes the files and returns ``{name: expected}``,
where ``expected`` is ``("ingested", n)`` (n images taken) or ``("refused", words)``
(words the one-line refusal must contain). Used by ``test_hostile_corpus.py``
through ``vestige ingest`` and the upload API.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

from PIL import Image

from conftest import encode, photo


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png(width: int, height: int, depth: int, colour: int, rows: int | None = None, extra: bytes = b"") -> bytes:
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width * channels * depth + 7) // 8)
    body = b"".join(compressor.compress(row) for _ in range(height if rows is None else rows)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + extra + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def _jpeg_with_size(width: int, height: int) -> bytes:
    data = bytearray(encode(photo(60, 64)))
    at = data.index(b"\xff\xc0")  # SOF0: length, precision, height, width
    data[at + 5:at + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _gif_with_screen(width: int, height: int) -> bytes:
    data = bytearray(encode(photo(61, 32), "GIF"))
    data[6:10] = struct.pack("<HH", width, height)
    return bytes(data)


def _tiff_with_size(width: int, height: int) -> bytes:
    entries = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
               (273, 4, 1, 8), (277, 3, 1, 1), (278, 4, 1, height), (279, 4, 1, 16)]
    ifd = struct.pack("<H", len(entries)) + b"".join(struct.pack("<HHII", *e) for e in entries) + b"\x00" * 4
    return b"II*\x00" + struct.pack("<I", 8 + 16) + b"\x00" * 16 + ifd


def _zip(members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
            for name, data in members:
                archive.writestr(name, data)
    return buf.getvalue()


def _symlink_member() -> zipfile.ZipInfo:
    info = zipfile.ZipInfo("link.jpg")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


def _frames(fmt: str, n: int, **kwargs: object) -> bytes:
    frames = [photo(70 + i, 48) for i in range(n)]
    buf = io.BytesIO()
    frames[0].save(buf, fmt, save_all=True, append_images=frames[1:], **kwargs)
    return buf.getvalue()


def _huge_comments(count: int) -> bytes:
    data = encode(photo(62, 64))
    comment = b"\xff\xfe" + struct.pack(">H", 65_000) + b"x" * 64_998
    return data[:2] + comment * count + data[2:]


def _ztxt_bomb() -> bytes:
    text = b"Comment\x00\x00" + zlib.compress(b"A" * (64 * 2**20), 9)
    return _png(64, 64, 8, 2, extra=_chunk(b"zTXt", text))


def make_corpus(folder: Path) -> dict[str, tuple[str, object]]:
    folder.mkdir(parents=True, exist_ok=True)
    good = encode(photo(63, 64))
    files: dict[str, tuple[bytes | None, tuple[str, object]]] = {
        "truncated.jpg": (encode(photo(64, 128))[:1500], ("refused", "truncated or corrupt")),
        "truncated.png": (encode(photo(65, 128), "PNG")[:900], ("refused", "truncated.png")),
        "truncated.webp": (encode(photo(66, 128), "WEBP")[:300], ("refused", "truncated.webp")),
        "empty.jpg": (b"", ("refused", "is empty (0 bytes)")),
        "notes.jpg": (b"these are my notes\n" * 20, ("refused", "it looks like text")),
        "document.png": (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n", ("refused", "looks like a PDF")),
        "pixel-bomb.png": (_png(60_000, 60_000, 1, 0), ("refused", "(ingest.max_pixels)")),
        "byte-bomb.png": (_png(9_990, 9_990, 16, 6), ("refused", "(ingest.max_decoded_bytes)")),
        "bomb.gif": (_gif_with_screen(65_535, 65_535), ("refused", "(ingest.max_pixels)")),
        "bomb.tiff": (_tiff_with_size(100_000, 100_000), ("refused", "(ingest.max_pixels)")),
        "bomb.jpg": (_jpeg_with_size(65_500, 65_500), ("refused", "(ingest.max_pixels)")),
        "zero-size.png": (_png(0, 0, 8, 2, rows=0), ("refused", "zero-size.png")),
        "bad-header.bmp": (b"BM" + b"\x00" * 12 + struct.pack("<I", 7) + b"\x00" * 40, ("refused", "not a supported image type")),
        "phone.heic": (struct.pack(">I", 24) + b"ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64, ("refused", "HEIC")),
        "ztxt-bomb.png": (_ztxt_bomb(), ("refused", "Decompressed data too large")),
        "huge-comments.jpg": (_huge_comments(150), ("ingested", 1)),
        "jpeg-then-zip.jpg": (good + _zip([("inner.jpg", encode(photo(67, 32)))]), ("ingested", 1)),
        "gif-then-zip.gif": (encode(photo(68, 32), "GIF") + _zip([("x.txt", b"hi")]), ("ingested", 1)),
        "zip-then-jpeg.zip": (_zip([("in.jpg", encode(photo(69, 32)))]) + good, ("ingested", 1)),
        "pages.tiff": (_frames("TIFF", 3), ("ingested", 1)),
        "animated.gif": (_frames("GIF", 4, duration=100, loop=0), ("ingested", 1)),
        "animated.png": (_frames("PNG", 3), ("ingested", 1)),
        "zip-bomb.zip": (_zip([("big.jpg", b"\x00" * (101 * 2**20))]), ("refused", "ingest.archive_max_member_bytes")),
        "zip-slip.zip": (_zip([("fine.jpg", good), ("../../etc/cron.d/evil.jpg", good)]), ("refused", "escapes the archive")),
        "absolute.zip": (_zip([("/etc/evil.jpg", good)]), ("refused", "has an absolute path")),
        "symlink.zip": (_zip([(_symlink_member(), b"/etc/passwd")]), ("refused", "is a symbolic link")),
        "same-names.zip": (_zip([("same.jpg", encode(photo(80, 48))), ("same.jpg", encode(photo(81, 48)))]),
                           ("ingested", 2)),
        "not-a-zip.zip": (b"PK\x03\x04" + b"\x00" * 60, ("refused", "not a readable zip archive")),
        "ctrl\x01\u202ename.jpg": (encode(photo(82, 48)), ("ingested", 1)),
    }
    expected = {}
    for name, (data, outcome) in files.items():
        (folder / name).write_bytes(data)
        expected[name] = outcome
    os.symlink(folder / "pages.tiff", folder / "link-to-pages.tiff")
    expected["link-to-pages.tiff"] = ("refused", "is not a regular file")
    return expected
