"""``vestige bench build tiles-dev``: a development set of full-size images for tiling (docs/tiles.md).

Two folders, ``fit`` and ``test``, each with one sub-folder per source in the
``folders`` layout that ``vestige models calibrate-tiles`` reads:

- ``real``: pieces of ``side``×``side`` cut at native resolution (never
  resized) from the photographs scikit-image bundles
  (:func:`vestige.plugin.reference_photographs`), at most ``pieces`` per
  photograph on an even grid. Photographs are assigned to ``fit`` or
  ``test`` whole (alternating in name order), so no photograph lends pieces
  to both.
- each zoo generator: ``mosaics`` images of ``side``×``side`` made of the
  generator's 32×32 samples laid edge to edge on a grid shifted by a random
  offset of 1–31 pixels in each direction, so sample borders never align
  with the tile grid (every tile straddles up to four samples), and
  ``whole`` whole 32×32 samples, judged as they always were. ``fit`` and
  ``test`` use different sampling seeds.

Every file is written by :func:`vestige.models.datasets.encode_png`, so the
container is never a cue. The same options give the same bytes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from vestige.analysis.tiles import spread
from vestige.core.errors import InvalidInputError
from vestige.models.datasets import encode_png
from vestige.plugin import reference_photographs

Progress = Callable[[str], None]
SAMPLE_SIDE = 32
SPLITS = ("fit", "test")


def photograph_pieces(image: Image.Image, side: int, pieces: int) -> list[Image.Image]:
    """At most ``pieces`` non-overlapping side×side crops of ``image`` on an even grid (none if it is smaller)."""
    columns, rows = image.width // side, image.height // side
    if not columns or not rows:
        return []
    keep_y = max(1, min(rows, round(math.sqrt(pieces * rows / columns))))
    keep_x = max(1, min(columns, pieces // keep_y))
    return [image.crop((c * side, r * side, (c + 1) * side, (r + 1) * side))
            for r in spread(rows, keep_y) for c in spread(columns, keep_x)][:pieces]


def mosaic(samples: np.ndarray, side: int, offset: tuple[int, int]) -> Image.Image:
    """A side×side picture of 32×32 ``samples`` laid edge to edge, the grid shifted by ``offset``."""
    per_row = side // SAMPLE_SIDE + 2
    canvas = Image.new("RGB", (per_row * SAMPLE_SIDE, per_row * SAMPLE_SIDE))
    for k in range(per_row * per_row):
        canvas.paste(Image.fromarray(samples[k]), ((k % per_row) * SAMPLE_SIDE, (k // per_row) * SAMPLE_SIDE))
    x, y = offset
    return canvas.crop((x, y, x + side, y + side))


def build_tile_devset(out: Path, *, side: int = 96, pieces: int = 8, mosaics: int = 8, whole: int = 8, seed: int = 0,
                      generators: list[str] | None = None, device: str = "cpu",
                      progress: Progress | None = None) -> dict[str, Any]:
    """Write the development set under ``out`` (which must not exist); returns the counts per split and source."""
    from vestige_zoo.catalog import list_models
    from vestige_zoo.registry import load_generator
    from vestige_zoo.sampling import sample_images

    say = progress or (lambda _: None)
    if out.exists():
        raise InvalidInputError(f"{out} exists; give a new folder")
    if side < SAMPLE_SIDE:
        raise InvalidInputError(f"--side must be at least {SAMPLE_SIDE}, not {side}")
    names = generators or [m.name for m in list_models(generators_only=True)]
    photographs = reference_photographs()
    if not photographs:
        raise InvalidInputError("scikit-image is not installed, so there are no package photographs for `real`")
    partial = out.with_name(out.name + ".partial")
    counts: dict[str, dict[str, int]] = {split: {} for split in SPLITS}

    def write(split: str, source: str, name: str, image: Image.Image) -> None:
        folder = partial / split / source
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{name}.png").write_bytes(encode_png(image))
        counts[split][source] = counts[split].get(source, 0) + 1

    for index, (name, photo) in enumerate(sorted(photographs.items())):
        for k, piece in enumerate(photograph_pieces(photo, side, pieces)):
            write(SPLITS[index % 2], "real", f"{name}-{k:02d}", piece)
    per_mosaic = (side // SAMPLE_SIDE + 2) ** 2
    for g, name in enumerate(names):
        say(f"{name}: sampling {len(SPLITS) * (mosaics * per_mosaic + whole)} images")
        generator = load_generator(name)
        for s, split in enumerate(SPLITS):
            sample_seed = seed * 1000 + g * 10 + s
            pixels, _ = sample_images(name, generator, mosaics * per_mosaic + whole, sample_seed, device=device)
            offsets = np.random.default_rng(sample_seed).integers(1, SAMPLE_SIDE, (mosaics, 2))
            for m in range(mosaics):
                write(split, name, f"mosaic-{m:03d}",
                      mosaic(pixels[m * per_mosaic:(m + 1) * per_mosaic], side, (int(offsets[m, 0]), int(offsets[m, 1]))))
            for w in range(whole):
                write(split, name, f"whole-{w:03d}", Image.fromarray(pixels[mosaics * per_mosaic + w]))
    partial.rename(out)
    return counts
