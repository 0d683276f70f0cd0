"""Tile- and image-level accuracy of a run on a tiled dataset (``bench build folders --tiles``; docs/tiles.md).

Used by ``vestige bench run`` (the harness) and ``vestige train``; kept out of
the harness, which imports it where it reports a tiled dataset.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from vestige.models.attribution_metrics import UNKNOWN, accuracy, predicted_source
from vestige.models.datasets import Record
from vestige.plugin import Finding

__all__ = ["image_level_metrics", "source_image"]


def source_image(record: Record, by_path: Mapping[str, Record]) -> str | None:
    """The full-size image a tile record was cut from (its file under the source folder; a perturbed copy: its
    clean parent's), ``None`` for a record that is not a tile (docs/tiles.md)."""
    origin = record.origin
    if record.parent is not None and record.parent in by_path:
        origin = by_path[record.parent].origin
    return origin.get("file") if isinstance(origin, Mapping) and "tile" in origin else None


def image_level_metrics(records: Sequence[Record], findings: Sequence[Finding], sources: Sequence[str],
                        by_path: Mapping[str, Record]) -> dict[str, Any] | None:
    """Tile- and image-level accuracy of tile records; ``None`` when the records are not tiles.

    Tile level: each tile's own decision (``unknown`` is wrong). Image level: the source with the highest mean
    calibrated log-probability over the image's scored tiles (:func:`vestige.analysis.tiles.mean_log_probability`, no
    thresholds: the rule's top-1), against the image's source."""
    import numpy as np

    from vestige.analysis.tiles import mean_log_probability

    groups: dict[str, list[int]] = {}
    for i, record in enumerate(records):
        image = source_image(record, by_path)
        if image is not None:
            groups.setdefault(image, []).append(i)
    if not groups:
        return None
    true, predicted = [], []
    for indices in groups.values():
        true.append(records[indices[0]].source)
        scored = [findings[i].scores for i in indices if not findings[i].error and set(findings[i].scores) == set(sources)]
        if not scored:
            predicted.append(UNKNOWN)
            continue
        image_p = mean_log_probability(np.array([[s[k] for k in sources] for s in scored], dtype=np.float64))
        predicted.append(sources[int(np.argmax(image_p))])
    tiles = [i for indices in groups.values() for i in indices]
    return {"tiles": len(tiles), "images": len(groups),
            "tile_accuracy": accuracy([records[i].source for i in tiles], [predicted_source(findings[i]) for i in tiles]),
            "image_accuracy": accuracy(true, predicted),
            "image_rule": "top-1 of the mean calibrated log-probability of the image's tiles"}
