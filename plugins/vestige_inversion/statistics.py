"""The belonging statistics: image complexity, the calibration fit, and the outlier test.

A generator's calibration is the inversion loss of N of its own samples. The
score of an image is ``log(loss)`` or, when it makes the calibration sample
tighter, ``log(loss / complexity)``; log-losses are close to normal, so the
calibration is summarised by their mean and standard deviation.

A new image is tested as a potential outlier of that sample, one-sided (only
a loss that is too *high* argues against belonging):

- ``p``: the exact one-sided p-value for one new observation from the same
  normal population, ``T = (x - mean) / (sd * sqrt(1 + 1/n))`` with ``n - 1``
  degrees of freedom (the prediction-interval form of the test). The verdict
  uses it: the image belongs at level ``alpha`` when ``p >= alpha``.
- ``G = (x - mean) / sd`` and the Grubbs critical value for ``n + 1`` points at
  ``alpha``: whether the new image would be flagged as the outlier of the
  calibration sample plus itself. Reported next to ``p``; it is stricter,
  because it allows for any of the ``n + 1`` points being the outlier.

numpy and scipy only: no torch here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

#: Keeps ``log`` finite for a perfect reconstruction (loss 0 after quantisation).
LOSS_FLOOR = 1e-8
#: Smallest standard deviation of a calibration's scores. The generator's own samples mostly reach the floor
#: that 8-bit quantisation sets (MSE ≈ 5e-6), so their log-losses can agree to a few hundredths, and an image
#: inverted a little less far would then be an "outlier" for no forensic reason: spreads below a factor of
#: e^0.5 in loss are treated as that factor.
MIN_SD = 0.5
STATISTICS = ("log-loss", "log-loss-per-complexity")


def complexity(images: np.ndarray) -> np.ndarray:
    """Mean absolute difference between neighbouring pixels of N×C×H×W images in [-1, 1] (plus a floor)."""
    x = np.asarray(images, dtype=np.float64)
    dx = np.abs(np.diff(x, axis=-1)).mean(axis=(1, 2, 3))
    dy = np.abs(np.diff(x, axis=-2)).mean(axis=(1, 2, 3))
    return (dx + dy) / 2 + 1e-3


def score(losses: np.ndarray, complexities: np.ndarray, statistic: str) -> np.ndarray:
    """The belonging score of each image under ``statistic`` (higher = less like the generator's own samples)."""
    losses = np.maximum(np.asarray(losses, dtype=np.float64), LOSS_FLOOR)
    if statistic == "log-loss":
        return np.log(losses)
    if statistic == "log-loss-per-complexity":
        return np.log(losses / np.asarray(complexities, dtype=np.float64))
    raise ValueError(f"unknown statistic {statistic!r}; use one of {', '.join(STATISTICS)}")


@dataclass(frozen=True)
class Fit:
    """The normal fit of a calibration sample's scores."""

    statistic: str
    n: int
    mean: float
    sd: float

    @classmethod
    def of(cls, losses: np.ndarray, complexities: np.ndarray, statistic: str | None = None) -> Fit:
        """Fit ``statistic``, or the one whose calibration scores spread least (normalising only when it helps;
        the raw log-loss on a tie)."""
        if len(losses) < 3:
            raise ValueError("a calibration needs at least 3 samples")
        fits = [cls._fit(losses, complexities, s) for s in ((statistic,) if statistic else STATISTICS)]
        return min(fits, key=lambda f: f.sd)

    @classmethod
    def _fit(cls, losses: np.ndarray, complexities: np.ndarray, statistic: str) -> Fit:
        values = score(losses, complexities, statistic)
        return cls(statistic, len(values), float(values.mean()), float(max(values.std(ddof=1), MIN_SD)))

    def test(self, loss: float, image_complexity: float, alpha: float) -> Test:
        """The one-sided outlier test of one new image's loss."""
        from scipy import stats

        x = float(score(np.array([loss]), np.array([image_complexity]), self.statistic)[0])
        g = (x - self.mean) / self.sd
        t = g / math.sqrt(1 + 1 / self.n)
        p = float(stats.t.sf(t, self.n - 1))
        return Test(score=x, p=p, grubbs_g=g, grubbs_critical=grubbs_critical(self.n + 1, alpha), belongs=p >= alpha)


@dataclass(frozen=True)
class Test:
    """The outcome for one image: its score, the p-value, Grubbs' G and critical value, the verdict."""

    score: float
    p: float
    grubbs_g: float
    grubbs_critical: float
    belongs: bool

    def as_dict(self) -> dict[str, float | bool]:
        return {"score": self.score, "p": self.p, "grubbs_g": self.grubbs_g,
                "grubbs_critical": self.grubbs_critical, "grubbs_outlier": self.grubbs_g > self.grubbs_critical,
                "belongs": self.belongs}


def grubbs_critical(n_points: int, alpha: float) -> float:
    """One-sided Grubbs critical value for the largest of ``n_points`` normal observations at level ``alpha``."""
    from scipy import stats

    n = n_points
    t = float(stats.t.isf(alpha / n, n - 2))
    return (n - 1) / math.sqrt(n) * math.sqrt(t * t / (n - 2 + t * t))


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(positive score > negative score), ties counting half: how well higher scores flag the positives."""
    neg = np.asarray(negatives, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))
