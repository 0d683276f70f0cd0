"""Native resolution: an image larger than a detector's input, judged tile by tile and aggregated into one finding.

A trained attribution detector is validated on square images of one side
(zoo32: 32×32). An image of another size used to be refused by the geometry
gate; now, when it is at least one tile in both directions, the platform
cuts it into tiles of that side, **never resized**, and the detector judges
each tile as it would judge an image (its novelty gate included). The rules,
documented for examiners in docs/tiles.md:

- **Grid.** Tiles of ``side`` on a grid that covers the image: columns at
  ``0, side, 2·side, …`` and a last column flush with the right edge (it
  overlaps its neighbour when the width is not a multiple of ``side``); the
  same for rows. An image smaller than one tile in either direction is not
  tiled: it goes through the whole-image path, whose geometry gate refuses it.
- **Cap.** At most ``max_tiles`` tiles per image and detector (configuration
  ``tiles.max_tiles``). A larger grid is thinned to an evenly spaced
  sub-grid, chosen from the image's size and the cap alone (same image, same
  tiles), keeping the grid's aspect so the tiles still span the whole image.
- **Batches.** The tiles of one image go through the detector in batches of
  its ``batch_size``, apart from other images' tiles, so a finding never
  depends on what else was in the task.
- **Aggregation** (:data:`RULE`). Tiles outside the validated domain (their
  finding says ``in_domain: false``) do not vote. With fewer than
  :data:`MIN_INSIDE` of the analysed tiles inside, the image is inconclusive.
  Otherwise the image's probabilities are the mean of the inside tiles'
  calibrated log-probabilities, renormalised (a normalised geometric mean).
  The mean, not the sum, keeps an image's probability on the scale of one
  tile's: a sum would turn many weakly synthetic-looking tiles of a
  photograph into a confident accusation.
- **Image-level calibration.** The model's thresholds were set on whole
  images of its training size, and they do not carry over to the tiles of a
  larger image: native-resolution tiles of a camera photograph are not
  CIFAR images (measured in docs/tiles.md: the shipped ManiFPT names a
  generator for most tiles of a photograph that its novelty gate admits).
  The image is therefore decided (:func:`vestige.plugin.domain.conclude`) only
  with an image-level calibration recorded in the artifact's domain under
  ``tiles`` (an open-set threshold and an accusation threshold fitted on
  full-size reference images, ``vestige models calibrate-tiles``); without
  one the finding is inconclusive and says so, and keeps its tiles and heat map.
- **What the finding keeps.** Every analysed tile's origin, probabilities,
  label and domain flag, the grid, the cap and the rule (``evidence.tiles``);
  a heat map of the per-tile probability of synthetic (of the named source
  for a model without a ``real`` class), and the pictures of the tile that
  looks most synthetic inside the domain.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from vestige.analysis.pictures import heatmap_png
from vestige.core.config import TilesSection
from vestige.plugin import Detector, Finding, ImageInput, Picture
from vestige.plugin.domain import REAL, conclude

#: Default most tiles per image and detector (configuration ``tiles.max_tiles``); docs/benchmarks.md times it.
DEFAULT_MAX_TILES = TilesSection.max_tiles
#: Least share of the analysed tiles that must lie inside the validated domain for the image to be judged.
MIN_INSIDE = 0.5
RULE = "mean-log-probability"
RULE_TEXT = ("the image's probabilities are the mean of its in-domain tiles' calibrated log-probabilities, "
             "renormalised, decided by the model's own thresholds; tiles outside the domain do not vote, and fewer "
             f"than {MIN_INSIDE:.0%} of the tiles inside makes the image inconclusive")
#: What a finding repeats of the artifact's image-level calibration (the rest, fit and test rates, stays there).
CALIBRATION_KEYS = ("threshold", "accusation_threshold", "rate")
#: Smallest probability taken into a logarithm.
_FLOOR = 1e-12

RunBatches = Callable[[Detector, Sequence[ImageInput]], list[Finding]]


def axis_origins(length: int, side: int) -> tuple[int, ...]:
    """Tile origins along one axis: every ``side`` pixels, the last flush with the edge."""
    if length < side:
        return ()
    count = math.ceil(length / side)
    return tuple(min(i * side, length - side) for i in range(count))


def spread(count: int, keep: int) -> list[int]:
    """``keep`` of ``range(count)``, evenly spaced, first and last included (the middle one for ``keep`` 1)."""
    if keep >= count:
        return list(range(count))
    if keep == 1:
        return [(count - 1) // 2]
    return [round(i * (count - 1) / (keep - 1)) for i in range(keep)]


@dataclass(frozen=True)
class TileGrid:
    """The tiles of ``side`` covering a ``width``×``height`` image, and the ones analysed under a cap."""

    width: int
    height: int
    side: int
    xs: tuple[int, ...]
    ys: tuple[int, ...]

    @classmethod
    def cover(cls, width: int, height: int, side: int) -> TileGrid:
        if side < 1:
            raise ValueError(f"a tile side must be positive, not {side}")
        return cls(width, height, side, axis_origins(width, side), axis_origins(height, side))

    @property
    def total(self) -> int:
        return len(self.xs) * len(self.ys)

    def chosen(self, max_tiles: int) -> list[tuple[int, int]]:
        """(column, row) of the tiles analysed, row by row: all of them, or an evenly spaced sub-grid of at most
        ``max_tiles`` with about the grid's aspect."""
        columns, rows = len(self.xs), len(self.ys)
        if self.total <= max_tiles:
            keep_x, keep_y = columns, rows
        else:
            keep_x = max(1, min(columns, math.floor(math.sqrt(max_tiles * columns / rows))))
            keep_y = max(1, min(rows, max_tiles // keep_x))
            keep_x = max(1, min(columns, max_tiles // keep_y))
        return [(c, r) for r in spread(rows, keep_y) for c in spread(columns, keep_x)]

    def origin(self, column: int, row: int) -> tuple[int, int]:
        return self.xs[column], self.ys[row]

    def cell(self, column: int, row: int) -> tuple[int, int, int, int]:
        """The part of the image a tile stands for in a heat map: its grid cell, so the cells partition the image
        even where the flush last tile overlaps its neighbour."""
        x0, y0 = column * self.side, row * self.side
        return x0, y0, min(x0 + self.side, self.width), min(y0 + self.side, self.height)

    def describe(self, chosen: int, max_tiles: int) -> str:
        grid = f"{len(self.xs)}×{len(self.ys)}"
        if chosen == self.total:
            return f"every tile of the {grid} grid"
        return f"an evenly spaced sub-grid of {chosen} tiles of the {grid} grid (cap {max_tiles})"


def tile_inputs(item: ImageInput, grid: TileGrid, chosen: Sequence[tuple[int, int]]) -> list[ImageInput]:
    """The analysed tiles of ``item``, cropped at native resolution (never resized)."""
    tiles = []
    for column, row in chosen:
        x, y = grid.origin(column, row)
        tiles.append(replace(item, name=f"{item.name} [tile {x},{y}]",
                             image=item.image.crop((x, y, x + grid.side, y + grid.side)), tile=(x, y, grid.side)))
    return tiles


def analyse_tiles(detector: Detector, item: ImageInput, grid: TileGrid, *, max_tiles: int, run: RunBatches,
                  calibration: Mapping[str, Any] | None) -> Finding:
    """One finding for ``item`` from its tiles (see the module docstring for the rules)."""
    chosen = grid.chosen(max_tiles)
    began = time.perf_counter()
    findings = run(detector, tile_inputs(item, grid, chosen))
    elapsed_ms = (time.perf_counter() - began) * 1000
    return aggregate(detector, grid, chosen, findings, max_tiles=max_tiles, calibration=calibration, image=item,
                     runtime_ms=elapsed_ms)


def _inside(finding: Finding) -> bool:
    domain = finding.evidence.get("domain") if isinstance(finding.evidence, dict) else None
    return not (isinstance(domain, dict) and domain.get("in_domain") is False)


def _tile_label(finding: Finding) -> str:
    return finding.source or finding.label


def aggregate(detector: Detector, grid: TileGrid, chosen: Sequence[tuple[int, int]], findings: Sequence[Finding], *,
              max_tiles: int, calibration: Mapping[str, Any] | None, image: ImageInput | None = None,
              runtime_ms: float | None = None) -> Finding:
    """The image's finding from its tiles' findings (in the order of ``chosen``); ``calibration`` is the
    artifact's image-level calibration (``domain["tiles"]``), ``None`` when it has none."""
    sources = list(detector.labels)
    origins = [list(grid.origin(c, r)) for c, r in chosen]
    failed = next(((o, f) for o, f in zip(origins, findings) if f.error), None)
    if failed is not None:
        return detector.finding(label="unknown", error=f"tile at ({failed[0][0]}, {failed[0][1]}): {failed[1].error}",
                                runtime_ms=runtime_ms)
    if any(set(f.scores) != set(sources) for f in findings):
        return detector.finding(label="unknown", runtime_ms=runtime_ms,
                                error=f"a tile's finding does not score exactly the model's sources ({', '.join(sources)})")
    probabilities = np.array([[f.scores[s] for s in sources] for f in findings], dtype=np.float64)
    inside = np.array([_inside(f) for f in findings], dtype=bool)
    heat_of = ("P(synthetic)", None) if REAL in sources else None
    record: dict[str, Any] = {
        "side": grid.side, "image": [grid.width, grid.height], "grid": [len(grid.xs), len(grid.ys)],
        "total": grid.total, "analysed": len(chosen), "cap": max_tiles, "choice": grid.describe(len(chosen), max_tiles),
        "rule": RULE, "rule_text": RULE_TEXT, "min_inside": MIN_INSIDE, "inside": int(inside.sum()),
        "calibration": None if calibration is None else {k: calibration[k] for k in CALIBRATION_KEYS if k in calibration},
        "sources": sources, "origins": origins, "probabilities": probabilities.tolist(),
        "in_domain": inside.tolist(), "labels": [_tile_label(f) for f in findings],
    }
    needed = max(1, math.ceil(MIN_INSIDE * len(findings)))
    accuse_at = None if calibration is None else calibration.get("accusation_threshold")
    label, source, confidence = "unknown", None, None
    if inside.sum() < needed:
        reason = (f"outside the validated domain: only {int(inside.sum())} of the {len(findings)} tiles of "
                  f"{grid.side}×{grid.side} analysed lie inside it, at least {needed} must")
        first = next((f.reason for f in findings if not _inside(f) and f.reason), None)
        if first:
            reason += f" (first refused tile: {first})"
        scores = mean_log_probability(probabilities)
        domain: dict[str, Any] = {"in_domain": False, "reason": reason, "accusation_threshold": accuse_at,
                                  "p_synthetic": _p_synthetic(scores, sources)}
    elif calibration is None:
        scores = mean_log_probability(probabilities[inside])
        domain = {"in_domain": True, "accusation_threshold": None, "p_synthetic": _p_synthetic(scores, sources),
                  "reason": (f"no image-level calibration: the model's thresholds were validated on whole "
                             f"{grid.side}×{grid.side} images, not on the tiles of a larger image, so "
                             f"{int(inside.sum())} in-domain tiles decide nothing until "
                             f"`vestige models calibrate-tiles` fits one (the heat map shows them)")}
    else:
        scores = mean_log_probability(probabilities[inside])
        decision = conclude(scores, sources, float(calibration["threshold"]), accuse_at)
        label, source, confidence, domain = decision.label, decision.source, decision.confidence, decision.evidence
    domain = {**domain, "tiles_inside": int(inside.sum()), "tiles_analysed": len(findings)}
    if heat_of is None:
        top = sources[int(np.argmax(scores))]
        heat_of = (f"P({top})", top)
    values = (1.0 - probabilities[:, sources.index(REAL)]) if heat_of[1] is None else \
        probabilities[:, sources.index(heat_of[1])]
    record["heat"] = heat_of[0]
    pictures = [_heat_picture(detector, grid, chosen, values, inside, heat_of[0], max_tiles, image)]
    suspect = int(np.argmax(np.where(inside, values, -1.0))) if inside.any() else None
    if suspect is not None:
        record["most_suspect"] = origins[suspect]
        x, y = origins[suspect]
        pictures += [Picture(f"tile-{x}-{y}-{p.name}", f"Tile at ({x}, {y}), the highest {heat_of[0]} inside the "
                             f"domain: {p.caption}", p.data, p.media_type) for p in findings[suspect].pictures]
    first = findings[0] if findings else None
    return detector.finding(
        label=label, source=source, confidence=None if confidence is None else min(1.0, float(confidence)),
        scores={s: float(v) for s, v in zip(sources, scores)},
        evidence={"tiles": record, "domain": domain}, pictures=pictures,
        device=first.device if first else "cpu", precision=first.precision if first else "fp32", runtime_ms=runtime_ms)


def mean_log_probability(probabilities: np.ndarray) -> np.ndarray:
    """The rule: per class, the mean of the rows' log-probabilities, renormalised (a normalised geometric mean)."""
    logs = np.log(np.clip(probabilities, _FLOOR, 1.0)).mean(axis=0)
    weights = np.exp(logs - logs.max())
    return weights / weights.sum()


def _p_synthetic(p: np.ndarray, sources: Sequence[str]) -> float | None:
    return None if REAL not in sources else float(1.0 - p[list(sources).index(REAL)])


def _heat_picture(detector: Detector, grid: TileGrid, chosen: Sequence[tuple[int, int]], values: np.ndarray,
                  inside: np.ndarray, what: str, max_tiles: int, image: ImageInput | None) -> Picture:
    cells = [grid.cell(c, r) for c, r in chosen]
    data = heatmap_png(None if image is None else image.image, (grid.width, grid.height), cells, values.tolist(),
                       inside.tolist(), title=f"{detector.name}: {what} per {grid.side}x{grid.side} tile")  # the bitmap font has no ×
    skipped = "" if len(chosen) == grid.total else \
        f"; dimmed: not analysed ({len(chosen)} of {grid.total} tiles, cap {max_tiles})"
    return Picture("heatmap", f"Heat map: {what} of each {grid.side}×{grid.side} tile by {detector.name}, blue 0 to red 1, "
                   f"laid over the image; grey hatching: tile outside the validated domain{skipped}", data)
