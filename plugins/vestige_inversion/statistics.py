"""The belonging statistics: image complexity, the calibration threshold, and the test of one image.

A generator's calibration inverts N of its own samples and M *negatives*
(real photographs, other registered generators' samples at its size). The
score of an image is ``log(loss)`` or ``log(loss / complexity)``; the
calibration keeps whichever separates its own samples from its negatives
better (AUROC, then the gap), and records both.

The threshold is empirical, so that one own sample the optimiser failed to
invert moves it by at most one rank (a fitted normal let such a sample widen
the accept region until it took in real images):

- ``a``: the smallest own score at or above which ``own_quantile`` of the own
  scores lie (so at least that share is accepted; with N = 200 and 0.95, ten
  own samples the optimiser failed to invert do not move it);
- ``b``: the smallest negative score with at least ``false_accept`` of the
  negatives at or below it (with fewer than 1 / ``false_accept`` negatives,
  the lowest one), so fewer than that share lies below the threshold;
- accept when ``score <= a + gap * (b - a)`` (``gap`` 0.5: halfway between, in
  log-loss).

If ``a >= b`` the accept region that keeps ``own_quantile`` of the own
samples reaches the negatives, and the calibration is refused. When the
negatives invert about as well as the own samples (AUROC below
``RECONSTRUCTS_ANYTHING_AUROC``), the generator reconstructs images it did
not make (an auto-encoder, a very expressive decoder) and the refusal says so.

numpy only: no torch here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vestige.plugin import InvalidInputError

#: Keeps ``log`` finite for a perfect reconstruction (loss 0 after quantisation).
LOSS_FLOOR = 1e-8
STATISTICS = ("log-loss", "log-loss-per-complexity")
OWN_QUANTILE = 0.95
FALSE_ACCEPT = 0.01
GAP = 0.5
#: Below this AUROC (own samples against negatives) a generator "reconstructs anything".
RECONSTRUCTS_ANYTHING_AUROC = 0.9


class CalibrationRefused(InvalidInputError):
    """A calibration whose accept region reaches its negatives."""


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


def auroc(negatives: np.ndarray, positives: np.ndarray) -> float:
    """P(positive score > negative score), ties counting half: how well higher scores flag the positives."""
    neg = np.asarray(negatives, dtype=np.float64)
    pos = np.asarray(positives, dtype=np.float64)
    if len(neg) == 0 or len(pos) == 0:
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum()
    ties = (pos[:, None] == neg[None, :]).sum()
    return float((greater + 0.5 * ties) / (len(pos) * len(neg)))


@dataclass(frozen=True)
class Separation:
    """How one statistic separates own samples from negatives: AUROC, the two quantiles and their gap."""

    statistic: str
    auroc: float
    own_bound: float       # a: the own_quantile quantile of the own scores
    negative_bound: float  # b: the false_accept quantile of the negatives' scores

    @property
    def gap(self) -> float:
        return self.negative_bound - self.own_bound

    @classmethod
    def of(cls, own: np.ndarray, negatives: np.ndarray, statistic: str, own_quantile: float,
           false_accept: float) -> Separation:
        return cls(statistic, auroc(own, negatives),
                   float(np.quantile(own, own_quantile, method="inverted_cdf")),
                   float(np.quantile(negatives, false_accept, method="inverted_cdf")))


@dataclass(frozen=True)
class Test:
    """The outcome for one image: its score, the threshold, the fraction of own samples scoring as high, the verdict."""

    score: float
    threshold: float
    p: float
    belongs: bool

    def as_dict(self) -> dict[str, float | bool]:
        return {"score": self.score, "threshold": self.threshold, "margin": self.threshold - self.score,
                "p": self.p, "belongs": self.belongs}


@dataclass(frozen=True)
class Threshold:
    """A calibration's decision rule, and what it was measured to do on the calibration's own samples and negatives."""

    statistic: str
    value: float
    own_scores: np.ndarray = field(repr=False, compare=False)
    own_accept: float
    false_accept: float
    false_accept_by_kind: Mapping[str, float]
    separations: Mapping[str, Mapping[str, float]]
    own_quantile: float = OWN_QUANTILE
    target_false_accept: float = FALSE_ACCEPT
    gap: float = GAP

    @classmethod
    def choose(cls, own_losses: np.ndarray, own_complexity: np.ndarray, neg_losses: np.ndarray,
               neg_complexity: np.ndarray, neg_kinds: np.ndarray, *, generator: str = "the generator",
               own_quantile: float = OWN_QUANTILE, false_accept: float = FALSE_ACCEPT, gap: float = GAP,
               statistic: str | None = None) -> Threshold:
        """The threshold for these calibration losses, or :class:`CalibrationRefused` saying why there is none.

        ``neg_kinds`` names each negative's kind (``real`` or the generator that made it).
        """
        if len(own_losses) < 3:
            raise CalibrationRefused("a calibration needs at least 3 own samples; raise --n")
        if len(neg_losses) < 1:
            raise CalibrationRefused("a calibration needs negatives (real photographs or other generators' samples); "
                                     "give --negatives DIR")
        scored = {s: (score(own_losses, own_complexity, s), score(neg_losses, neg_complexity, s))
                  for s in ((statistic,) if statistic else STATISTICS)}
        separations = {s: Separation.of(o, n, s, own_quantile, false_accept) for s, (o, n) in scored.items()}
        kinds = np.asarray(neg_kinds).astype(str)
        raw = separations.get("log-loss")
        if raw is not None and raw.auroc < RECONSTRUCTS_ANYTHING_AUROC:
            # Judged on the loss alone: at the loss floor, dividing by complexity would rank images by their detail.
            own, neg = scored["log-loss"]
            reached = neg <= raw.own_bound
            raise CalibrationRefused(
                f"the inversion loss of {generator} does not tell its own samples from others: {int(reached.sum())} of "
                f"{len(neg)} negatives ({_kinds_phrase(kinds[reached])}) invert as well as its own samples (AUROC "
                f"{raw.auroc:.2f}, median own loss {float(np.exp(np.median(own))):.2g}); either it reconstructs images "
                "it did not make and must be judged against a reference model (docs/inversion.md, 'Models that "
                "reconstruct anything'), or its own samples do not invert: raise --steps or --restarts")
        best = max(separations.values(), key=lambda sep: (round(sep.auroc, 6), sep.gap, sep.statistic == "log-loss"))
        own, neg = scored[best.statistic]
        if best.gap <= 0:
            reached = int((neg <= best.own_bound).sum())
            raise CalibrationRefused(
                f"the accept region of {generator} reaches its negatives: keeping {100 * own_quantile:.0f} % of its own "
                f"samples would accept {reached} of {len(neg)} negatives ({_kinds_phrase(kinds[neg <= best.own_bound])}); "
                "invert harder (--steps, --restarts) or check that its own samples invert")
        value = best.own_bound + gap * best.gap
        by_kind = {str(k): float(np.mean(neg[kinds == k] <= value)) for k in sorted(set(kinds))}
        return cls(best.statistic, float(value), own, float(np.mean(own <= value)), float(np.mean(neg <= value)),
                   by_kind, {s: {"auroc": sep.auroc, "own_bound": sep.own_bound, "negative_bound": sep.negative_bound,
                                 "gap": sep.gap} for s, sep in separations.items()},
                   own_quantile, false_accept, gap)

    def test(self, loss: float, image_complexity: float) -> Test:
        """Whether one new image's loss falls in the accept region; ``p``: the fraction of own samples (plus
        this one) that scored at least as high."""
        x = float(score(np.array([loss]), np.array([image_complexity]), self.statistic)[0])
        p = (1 + int((self.own_scores >= x).sum())) / (len(self.own_scores) + 1)
        return Test(score=x, threshold=self.value, p=p, belongs=x <= self.value)

    def header(self) -> dict[str, Any]:
        """What the artifact's header records (the own scores are recomputed from the stored losses)."""
        return {"statistic": self.statistic, "threshold": self.value, "own_accept": self.own_accept,
                "false_accept": self.false_accept, "false_accept_by_kind": dict(self.false_accept_by_kind),
                "separations": {k: dict(v) for k, v in self.separations.items()}, "own_quantile": self.own_quantile,
                "target_false_accept": self.target_false_accept, "gap": self.gap}


def _kinds_phrase(kinds: np.ndarray) -> str:
    real = int((kinds == "real").sum())
    generators = sorted(set(kinds) - {"real"})
    parts = [f"{real} real photograph{'s' if real != 1 else ''}"] if real else []
    parts += [f"{int((kinds == g).sum())} of {g}'s samples" for g in generators]
    return ", ".join(parts) or "none"
