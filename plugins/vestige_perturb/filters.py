"""Array primitives the operations share: float images, blurs, convolution, resampling.

Images are ``float32`` arrays of shape (height, width, 3) in [0, 1]. Everything
is vectorised over pixels; the only Python loops run over kernel taps or
octaves, so a 32×32 image costs microseconds and a large one stays linear.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

#: The side ImageNet-C's pixel constants were chosen for.
IMAGENET_SIDE = 224


def to_array(image: Image.Image) -> np.ndarray:
    """An RGB image as float32 in [0, 1]."""
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def to_image(array: np.ndarray) -> Image.Image:
    """Clip to [0, 1] and round to an 8-bit RGB image."""
    return Image.fromarray((np.clip(array, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), "RGB")


def spatial_scale(height: int, width: int) -> float:
    """How much a pixel extent chosen for 224×224 is scaled for this image.

    The square root of the shorter side over 224: a 32×32 image gets 0.38×,
    128² gets 0.76×, 1024² gets 2.1×.
    Linear scaling would make 32×32 blurs vanish below a pixel, and no scaling
    would smear a small image into a single colour.
    """
    return math.sqrt(min(height, width) / IMAGENET_SIDE)


def gaussian_blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of the first two axes, mirrored at the border."""
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    taps = (taps / taps.sum()).astype(np.float32)
    for axis in (0, 1):
        x = _correlate_axis(x, taps, axis)
    return x


def _correlate_axis(x: np.ndarray, taps: np.ndarray, axis: int) -> np.ndarray:
    radius = len(taps) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (radius, radius)
    padded = np.pad(x, pad, mode="symmetric")
    n = x.shape[axis]
    window = [slice(None)] * x.ndim
    out = np.zeros_like(x)
    for k, weight in enumerate(taps):
        window[axis] = slice(k, k + n)
        out += weight * padded[tuple(window)]
    return out


def convolve(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """2-D convolution of each channel with ``kernel`` (odd sides), mirrored at the border, by FFT."""
    kh, kw = kernel.shape
    ph, pw = kh // 2, kw // 2
    padded = np.pad(x, ((ph, ph), (pw, pw), (0, 0)), mode="symmetric")
    h, w = padded.shape[:2]
    spectrum = np.fft.rfft2(padded, axes=(0, 1))
    kspec = np.fft.rfft2(kernel.astype(np.float64), s=(h, w))
    full = np.fft.irfft2(spectrum * kspec[:, :, None], s=(h, w), axes=(0, 1))
    # Circular convolution with the kernel at the origin shifts by (ph, pw): the valid window starts at 2·pad.
    return full[2 * ph:2 * ph + x.shape[0], 2 * pw:2 * pw + x.shape[1]].astype(np.float32)


def disk_kernel(radius: float) -> np.ndarray:
    """A flat disk with an anti-aliased rim, summing to 1 (a lens out of focus)."""
    r = max(radius, 0.5)
    half = math.ceil(r)
    yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
    kernel = np.clip(r + 0.5 - np.hypot(yy, xx), 0.0, 1.0)
    return kernel / kernel.sum()


def line_kernel(length: float, sigma: float, angle_degrees: float) -> np.ndarray:
    """A one-sided streak of ``length`` pixels at ``angle``, weighted by a Gaussian of the distance travelled."""
    half = max(1, math.ceil(length))
    kernel = np.zeros((2 * half + 1, 2 * half + 1))
    t = np.linspace(0.0, length, max(2, 2 * half + 1))
    weights = np.exp(-0.5 * (t / max(sigma, 1e-3)) ** 2)
    theta = math.radians(angle_degrees)
    ys, xs = half - t * math.sin(theta), half + t * math.cos(theta)
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    fy, fx = ys - y0, xs - x0
    for dy, dx, share in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx), (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        np.add.at(kernel, (np.clip(y0 + dy, 0, 2 * half), np.clip(x0 + dx, 0, 2 * half)), weights * share)
    return kernel / kernel.sum()


def sample(x: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Bilinear samples of ``x`` at float pixel coordinates, mirrored at the border."""
    h, w = x.shape[:2]
    ys, xs = _mirror(ys, h), _mirror(xs, w)
    y0, x0 = np.floor(ys).astype(np.intp), np.floor(xs).astype(np.intp)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    top = x[y0, x0] * (1 - fx) + x[y0, x1] * fx
    bottom = x[y1, x0] * (1 - fx) + x[y1, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _mirror(coords: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(coords)
    period = 2 * (n - 1)
    folded = np.mod(coords, period)
    return np.where(folded > n - 1, period - folded, folded)


def resize_plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bicubic resize of a 2-D float array (Pillow's ``F`` mode keeps it in floating point)."""
    return np.asarray(Image.fromarray(plane.astype(np.float32), "F").resize((width, height), Image.Resampling.BICUBIC))
