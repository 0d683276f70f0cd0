"""Perceptual hashes as signed 64-bit integers, bit-identical to ImageHash.

pHash and dHash come straight from ImageHash. The wavelet hash and the colour
hash are computed by faster code that gives the same bits (tests compare them
with ImageHash on many images); together they were most of the ingest time.
"""

from __future__ import annotations


import imagehash
import numpy as np
from PIL import Image, ImageChops


def _bits_to_int(bits: np.ndarray) -> int:
    flat = np.asarray(bits, dtype=bool).ravel()
    n = flat.size
    value = int.from_bytes(np.packbits(flat).tobytes(), "big") >> ((-n) % 8)
    if n == 64 and value >= 1 << 63:
        value -= 1 << 64
    return value


def hash_to_int(h: imagehash.ImageHash) -> int:
    return _bits_to_int(h.hash)


#: Largest square side for which a whash tie is resolved by ImageHash itself.
_WHASH_REFERENCE_MAX_SCALE = 2048


def whash_int(gray: Image.Image) -> int:
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
        return hash_to_int(imagehash.whash(square))  # same scale, so the same computation
    return _bits_to_int(sums > median)


# Colour-hash classes as 8-bit codes, so that one Pillow histogram counts them all:
# hue bin (0..5, as numpy.histogram over linspace(0, 255, 7) assigns a hue byte)
# plus 8 * saturation class (0 grey: s < 85, 1 faint: s < 170, 2 neither: s == 170,
# 3 bright: s > 170); 255 marks black pixels (intensity < 32), whatever their colour.
_HUE_EDGES = np.linspace(0, 255, 6 + 1)
_HUE_LUT = [min(int(np.searchsorted(_HUE_EDGES, v, side="right")) - 1, 5) for v in range(256)]
_SAT_LUT = [8 * (0 if s < 256 // 3 else 1 if s < 256 * 2 // 3 else 2 if s == 256 * 2 // 3 else 3) for s in range(256)]
_BLACK_LUT = [255 if v < 256 // 8 else 0 for v in range(256)]


def colorhash_int(rgb: Image.Image, gray: Image.Image) -> int:
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
