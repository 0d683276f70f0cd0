"""Counting the frames (pages) of a multi-frame image without decoding them."""

from __future__ import annotations

from PIL import ImageFile

#: Frames are counted up to this many; counting a TIFF's pages costs about
#: 0.1 ms each, and 100 MiB holds a million of them.
MAX_COUNTED_FRAMES = 1000


def _count_gif_frames(data: bytes, cap: int) -> int:
    """Image descriptors in a GIF, walked the way Pillow walks them, without decoding."""
    size = len(data)
    flags = data[10] if size > 10 else 0
    pos = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0

    def skip_sub_blocks(at: int) -> int:
        while at < size:
            length = data[at]
            at += 1 + length
            if length == 0:
                break
        return at

    while pos < size and frames < cap:
        byte = data[pos]
        if byte == 0x3B:  # trailer
            break
        if byte == 0x21:  # extension: label, then sub-blocks
            pos = skip_sub_blocks(pos + 2)
        elif byte == 0x2C:  # image descriptor, local colour table, LZW code size, data
            frames += 1
            local = data[pos + 9] if pos + 9 < size else 0
            pos += 10 + (3 << ((local & 7) + 1) if local & 0x80 else 0) + 1
            pos = skip_sub_blocks(pos)
        else:  # Pillow skips stray bytes between blocks too
            pos += 1
    return max(1, frames)


def count_frames(image: ImageFile.ImageFile, fmt: str, data: bytes) -> int:
    """Frames (pages) in the file, at most :data:`MAX_COUNTED_FRAMES`; leaves frame 0 current."""
    if fmt == "GIF":
        return _count_gif_frames(data, MAX_COUNTED_FRAMES)
    if fmt == "TIFF":
        if not getattr(image, "is_animated", False):
            return 1
        count = 1
        try:
            while count < MAX_COUNTED_FRAMES:
                image.seek(count)
                count += 1
        except EOFError:
            pass
        image.seek(0)
        return count
    # PNG (APNG), WebP and MPO state their frame count in a header
    return max(1, min(int(getattr(image, "n_frames", 1)), MAX_COUNTED_FRAMES))
