"""Noise residuals: what is left of an image once a wavelet denoiser has taken its content away.

For each colour channel (pixels in [0, 1]): a ``levels``-deep 2-D wavelet
decomposition (periodic boundary, so the transform is orthonormal and keeps
the image's size), soft thresholding of every detail band with the
BayesShrink threshold ``σ² / σ_signal`` (``σ``, the noise level, from the
median absolute value of the finest diagonal band), reconstruction, and
``residual = image − denoised``. Then, as Lukáš, Fridrich and Goljan do,
each column and each row of the residual is made zero-mean, which removes
the linear patterns (row/column offsets of a sensor's read-out, or of JPEG's
grid) that many sources share and that would otherwise make every
fingerprint alike.

Why db4 at two levels for 32×32 images: the camera-forensics default, db8
at four levels, needs 16-tap filters, and a 32-pixel row allows only one
level of them, each wrapping around half the image. db4's 8 taps allow two
levels, which cover the pixel-scale traces generators leave (periods of 2 to
8 pixels: checkerboards of transposed convolutions, upsampling) and leave
the coarser content to the approximation. Larger images get up to four levels.
"""

from __future__ import annotations

import numpy as np

MAX_LEVELS = 4
#: ``median(|d|) / 0.6745`` estimates a Gaussian's σ from its median absolute value.
MAD_TO_SIGMA = 0.6745


def default_levels(size: int, wavelet: str) -> int:
    """As many levels as the image allows for ``wavelet``, at most :data:`MAX_LEVELS`, at least one."""
    import pywt

    return max(1, min(MAX_LEVELS, pywt.dwt_max_level(size, pywt.Wavelet(wavelet).dec_len)))


def bayes_shrink_threshold(band: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """BayesShrink's soft threshold per channel of one ``(h, w, C)`` detail band; all of it where it is pure noise."""
    signal_variance = np.mean(band**2, axis=(0, 1)) - sigma**2
    whole = np.max(np.abs(band), axis=(0, 1))
    with np.errstate(divide="ignore", invalid="ignore"):
        threshold = np.where(signal_variance > 0.0, sigma**2 / np.sqrt(np.maximum(signal_variance, 1e-300)), whole)
    return np.where(sigma > 0.0, threshold, 0.0)


def soft_threshold(band: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Shrink every coefficient towards zero by ``threshold`` (per channel), zeroing the small ones."""
    return np.sign(band) * np.maximum(np.abs(band) - threshold, 0.0)


def denoise(image: np.ndarray, wavelet: str, levels: int) -> np.ndarray:
    """An ``(H, W, C)`` image with the detail bands of each channel soft-thresholded."""
    import pywt  # here, not at the top: every vestige command imports the plugin

    coefficients = pywt.wavedec2(image, wavelet, mode="periodization", level=levels, axes=(0, 1))
    sigma = np.median(np.abs(coefficients[-1][2]), axis=(0, 1)) / MAD_TO_SIGMA
    kept = [coefficients[0]]
    for bands in coefficients[1:]:
        kept.append(tuple(soft_threshold(b, bayes_shrink_threshold(b, sigma)) for b in bands))
    height, width = image.shape[:2]
    return pywt.waverec2(kept, wavelet, mode="periodization", axes=(0, 1))[:height, :width]


def noise_residual(pixels: np.ndarray, wavelet: str = "db4", levels: int | None = None,
                   zero_mean: bool = True) -> np.ndarray:
    """The ``(H, W, 3)`` float64 residual of an ``(H, W, 3)`` uint8 image, in units of [0, 1] pixels."""
    image = pixels.astype(np.float64) / 255.0
    levels = levels or default_levels(min(image.shape[:2]), wavelet)
    residual = image - denoise(image, wavelet, levels)
    if zero_mean:
        residual -= residual.mean(axis=0, keepdims=True)
        residual -= residual.mean(axis=1, keepdims=True)
    return residual


def normalised_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two arrays' values, 0 when either is constant."""
    a = a.reshape(-1) - a.mean()
    b = b.reshape(-1) - b.mean()
    norm = float(np.sqrt((a @ a) * (b @ b)))
    return float(a @ b) / norm if norm > 0.0 else 0.0
