"""Building benchmark datasets (:mod:`vestige.models.datasets`): ``zoo32``, ``snapshots`` and ``folders``.

``zoo32``: real images are CIFAR-10 (train and val from its train split, test
from its test split), and each zoo generator is sampled class-conditionally
through the zoo plugin, quantised to 8 bits as ``vestige zoo sample`` does.
Train and val hold the five *seen* classes; test holds the seen classes and
the five *unseen* ones, half each.

``snapshots``: issue 18's development protocol, a lab's case built from the
zoo without any outside model: every snapshot of one or more ``vestige zoo
train --snapshot-every`` runs is a source (several checkpoints of one
training run, plus a run of another architecture), sampled like zoo32 with
seeds of its own; generators only unless CIFAR-10 is added as ``real``.

``folders``: a lab's own reference images, one sub-folder per source (``real``
for camera images), no classes, split at random per source.

Both add, for every clean test image, one copy under a seen corruption, one
under an unseen corruption (each chosen per image by a seeded generator, at a
fixed severity) and one re-shared (JPEG 60, then resized to 0.75).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image as PILImage

from vestige.analysis.tiles import TileGrid
from vestige.core.errors import InvalidInputError, VestigeError
from vestige.core.plugins import VestigePluginManager
from vestige.evidence.imageconvert import to_rgb
from vestige.evidence.imagefile import ImageLimits, decode_image
from vestige.models.datasets import (
    RESHARE_CHAIN,
    ZOO32_REAL_JPEG_QUALITY,
    Corruptions,
    Dataset,
    DatasetWriter,
    Record,
    apply_operations,
    seeded_rng,
)
from vestige.plugin.training import REAL

__all__ = ["SEEN_CLASSES", "UNSEEN_CLASSES", "Counts", "build_folders", "build_snapshots", "build_zoo32", "default_cifar_zip",
           "snapshot_sources", "zoo32_sources"]

SEEN_CLASSES = ("airplane", "automobile", "bird", "cat", "deer")
UNSEEN_CLASSES = ("dog", "frog", "horse", "ship", "truck")
_SOURCE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass(frozen=True)
class Counts:
    """Clean images per source: train and val over the seen classes; test half seen, half unseen classes."""

    train: int = 1000
    val: int = 200
    test: int = 500

    def plan(self) -> list[tuple[str, str, int]]:
        """``(split, class, n)`` in build order, balanced over classes (the first classes take any remainder)."""
        out = [("train", c, n) for c, n in _balanced(self.train, SEEN_CLASSES)]
        out += [("val", c, n) for c, n in _balanced(self.val, SEEN_CLASSES)]
        out += [("test", c, n) for c, n in _balanced(self.test - self.test // 2, SEEN_CLASSES)]
        out += [("test", c, n) for c, n in _balanced(self.test // 2, UNSEEN_CLASSES)]
        return [row for row in out if row[2] > 0]


def _balanced(n: int, classes: Sequence[str]) -> list[tuple[str, int]]:
    base, extra = divmod(n, len(classes))
    return [(c, base + (i < extra)) for i, c in enumerate(classes)]


def _perturbation_manifest(corruptions: Corruptions, severity: int) -> dict[str, Any]:
    return {"seen": list(corruptions.seen), "unseen": list(corruptions.unseen), "severity": severity,
            "reshared": [dict(op) for op in RESHARE_CHAIN]}


def add_test_conditions(writer: DatasetWriter, parent: Record, image: PILImage.Image, corruptions: Corruptions,
                        *, severity: int, seed: int) -> None:
    """The three perturbed copies of clean test image ``parent``; each draws from its own seeded generator."""
    for condition, group in (("seen-perturbations", "seen"), ("unseen-perturbations", "unseen")):
        rng = seeded_rng(seed, parent.path, condition)
        perturbed, op = corruptions.random(image.copy(), group, severity, rng)
        writer.add(perturbed, source=parent.source, klass=parent.klass, split="test", condition=condition,
                   operations=[op], parent=parent)
    rng = seeded_rng(seed, parent.path, "reshared")
    reshared = apply_operations(image.copy(), RESHARE_CHAIN, corruptions.operations, rng)
    writer.add(reshared, source=parent.source, klass=parent.klass, split="test", condition="reshared",
               operations=RESHARE_CHAIN, parent=parent)


def _write_source(writer: DatasetWriter, source: str, items: Iterator[tuple[str, str | None, PILImage.Image, Any]],
                  corruptions: Corruptions, *, severity: int, seed: int) -> dict[str, int]:
    counts = {"train": 0, "val": 0, "test": 0}
    for split, klass, image, origin in items:
        record = writer.add(image, source=source, klass=klass, split=split, origin=origin)
        counts[split] += 1
        if split == "test":
            # Perturb the stored pixels (what a detector of the clean image sees), not the pre-encoding ones.
            add_test_conditions(writer, record, image.convert("RGB"), corruptions, severity=severity, seed=seed)
    return counts


# ---------------------------------------------------------------------------
# zoo32


def default_cifar_zip() -> Path:
    """``../shared/data/cifar10-jpeg.zip`` from the working folder, else next to this checkout."""
    relative = Path("../shared/data/cifar10-jpeg.zip")
    if relative.is_file():
        return relative
    beside_repo = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "cifar10-jpeg.zip"
    return beside_repo if beside_repo.is_file() else relative


def zoo32_sources() -> tuple[str, ...]:
    """``real`` and the zoo's generators, in ``vestige zoo list`` order."""
    try:
        from vestige_zoo.catalog import list_models
    except ImportError:
        raise InvalidInputError("the zoo plugin (vestige_zoo) is not installed; zoo32 needs its generators") from None
    return (REAL, *(m.name for m in list_models(generators_only=True)))


def _cifar_images(zip_path: Path, plan: Sequence[tuple[str, str, int]], seed: int,
                  progress: Progress) -> Iterator[tuple[str, str | None, PILImage.Image, Any]]:
    """Real images: train and val drawn without overlap from CIFAR's train split, test from its test split."""
    try:
        archive = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise InvalidInputError(f"cannot read the CIFAR-10 zip {zip_path} ({exc}); give it with --data") from None
    with archive:
        members: dict[tuple[str, str], list[str]] = {}
        for name in sorted(archive.namelist()):
            parts = name.split("/")
            if len(parts) == 3 and parts[2].lower().endswith((".jpg", ".jpeg")):
                members.setdefault((parts[0], parts[1]), []).append(name)
        taken: dict[tuple[str, str], int] = {}
        for split, klass, n in plan:
            cifar_split = "test" if split == "test" else "train"
            pool = members.get((cifar_split, klass), [])
            start = taken.get((cifar_split, klass), 0)
            if start + n > len(pool):
                raise InvalidInputError(f"{zip_path} has {len(pool)} {cifar_split}/{klass} images, fewer than the "
                                        f"{start + n} asked for; lower --train/--val/--test")
            order = seeded_rng(seed, REAL, cifar_split, klass).permutation(len(pool))
            taken[(cifar_split, klass)] = start + n
            for index in order[start:start + n]:
                member = pool[int(index)]
                image, _ = decode_image(archive.read(member), name=f"{zip_path.name}:{member}")
                yield split, klass, to_rgb(image), {"archive": zip_path.name, "member": member}
            _report(progress, REAL, plan, split, klass)


def _report(progress: Progress, source: str, plan: Sequence[tuple[str, str, int]], split: str, klass: str) -> None:
    rows = [row for row in plan if row[0] == split]
    done = sum(n for _, c, n in rows[:[c for _, c, _ in rows].index(klass) + 1])
    progress(f"{source}: {split} {done}/{sum(n for _, _, n in rows)} images")


def _sample_seed(seed: int, split: str, klass: str) -> int:
    from vestige.plugin.cifar import CLASSES

    return seed * 1000 + ("train", "val", "test").index(split) * 100 + CLASSES.index(klass)


def _generator_images(name: str, plan: Sequence[tuple[str, str, int]], seed: int, device: str,
                      progress: Progress) -> Iterator[tuple[str, str | None, PILImage.Image, Any]]:
    """A shipped zoo generator's samples: per (split, class) one seed, so each image replays with ``vestige zoo sample``."""
    from vestige_zoo.registry import load_generator

    return _sampled_images(name, load_generator(name), name, plan, seed, device, progress)


def _sampled_images(model: str, generator: Any, source: str, plan: Sequence[tuple[str, str, int]], seed: int,
                    device: str, progress: Progress) -> Iterator[tuple[str, str | None, PILImage.Image, Any]]:
    """Samples of zoo model ``model`` from the loaded ``generator``, one sampling seed per (split, class)."""
    from vestige_zoo.sampling import sample_images

    for split, klass, n in plan:
        sample_seed = _sample_seed(seed, split, klass)
        pixels, _ = sample_images(model, generator, n, sample_seed, klass, device=device)
        for index, array in enumerate(pixels):
            # (seed, n, index): `vestige zoo sample NAME --class C --n N --seed S` draws it again (the latents depend on n).
            yield split, klass, PILImage.fromarray(array, "RGB"), {"generator": source, "seed": sample_seed, "n": n, "index": index}
        _report(progress, source, plan, split, klass)


def _zoo32_provenance(sources: Sequence[str], zip_path: Path) -> dict[str, Any]:
    """What the images were made from: the CIFAR-10 zip's hash and each generator's weights."""
    from vestige_zoo.weights import file_sha256, shipped_weights

    shipped = shipped_weights()
    out: dict[str, Any] = {"generators": {s: {"weights": shipped.entry(s).file, "weights_sha256": shipped.entry(s).sha256}
                                          for s in sources if s != REAL}}
    if REAL in sources:
        out["cifar10"] = {"file": zip_path.name, "sha256": file_sha256(zip_path)}
    return out


def build_zoo32(out: Path, *, data: Path | None = None, counts: Counts = Counts(), severity: int = 3, seed: int = 0,
                sources: Sequence[str] | None = None, command: str = "", device: str = "cpu",
                pm: VestigePluginManager | None = None, progress: Progress = _quiet) -> Dataset:
    """Build the zoo32 dataset into ``out`` (see the module docstring)."""
    available = zoo32_sources()
    chosen = list(available)
    if sources:
        unknown = [s for s in sources if s not in available]
        if unknown:
            raise InvalidInputError(f"unknown source {', '.join(unknown)}; zoo32 sources are {', '.join(available)}")
        chosen = [s for s in available if s in set(sources)]
    zip_path = data or default_cifar_zip()
    if REAL in chosen and not zip_path.is_file():
        raise InvalidInputError(f"{zip_path} does not exist; give the CIFAR-10 zip (train/ and test/ folders of JPEGs) with --data")
    corruptions = Corruptions.from_plugins(pm)
    from vestige.plugin.cifar import CLASSES

    plan = counts.plan()
    with DatasetWriter(out, name="zoo32", command=command, seed=seed, sources=chosen, classes=list(CLASSES),
                       seen_classes=list(SEEN_CLASSES), unseen_classes=list(UNSEEN_CLASSES),
                       perturbations=_perturbation_manifest(corruptions, severity),
                       provenance=_zoo32_provenance(chosen, zip_path)) as writer:
        for number, source in enumerate(chosen, 1):
            progress(f"[{number}/{len(chosen)}] {source}: {counts.train} train, {counts.val} val, {counts.test} test "
                     "images, and 3 perturbed copies of each test image")
            items = (_cifar_images(zip_path, plan, seed, progress) if source == REAL
                     else _generator_images(source, plan, seed, device, progress))
            _write_source(writer, source, items, corruptions, severity=severity, seed=seed)
        return writer.finish()


# ---------------------------------------------------------------------------
# snapshots: the development protocol of issue 18


def snapshot_sources(runs: Sequence[Path]) -> list[tuple[str, Path]]:
    """``(source name, folder)`` for every generator in ``runs``: each run's snapshots by step, then its final model.

    A run is a ``vestige zoo train --out`` folder; its ``snapshots/step-N/``
    folders (``--snapshot-every``) are sources of their own, named
    ``<run folder>-step<N>``, and so is the run's result, named by its step count.
    """
    import json

    out: list[tuple[str, Path]] = []
    for run in runs:
        if not run.is_dir():
            raise InvalidInputError(f"{run} is not a folder; give `vestige zoo train --out` folders")
        try:
            records = [json.loads(p.read_text()) for p in sorted(run.glob("*.json"))]
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"{run}: a training record cannot be read ({exc})") from None
        steps = [r.get("steps") for r in records if isinstance(r, dict) and r.get("weights")]
        if len(steps) != 1 or not isinstance(steps[0], int):
            raise InvalidInputError(f"{run} is not a finished `vestige zoo train --out` folder (one training record "
                                    "with its step count)")
        snapshots = sorted((int(p.name.removeprefix("step-")), p) for p in (run / "snapshots").glob("step-*")
                           if p.is_dir() and p.name.removeprefix("step-").isdigit())
        for step, folder in [*snapshots, (steps[0], run)]:
            out.append((f"{run.name}-step{step}", folder))
    names = [name for name, _ in out]
    bad = sorted({n for n in names if names.count(n) > 1 or not _SOURCE_NAME.match(n)})
    if bad:
        raise InvalidInputError(f"source names must be distinct and hold letters, digits, '.', '_' and '-' only: "
                                f"rename the run folders behind {', '.join(bad)}")
    if len(out) < 2:
        raise InvalidInputError("the runs hold one generator; attribution needs at least two (train with --snapshot-every)")
    return out


def build_snapshots(runs: Sequence[Path], out: Path, *, data: Path | None = None, counts: Counts = Counts(),
                    severity: int = 3, seed: int = 0, real: bool = False, command: str = "", device: str = "cpu",
                    pm: VestigePluginManager | None = None, progress: Progress = _quiet) -> Dataset:
    """A lab-like dataset from zoo training runs: every snapshot and final model is a source (see the docs).

    Each source is sampled class-conditionally over zoo32's plan (train/val on
    the seen classes, test half seen, half unseen) with sampling seeds of its
    own, so no two sources share a latent and a detector cannot match
    content. ``real`` adds CIFAR-10 photographs as zoo32 does; by default the
    dataset holds generators only, like a lab's case.
    """
    from vestige.plugin.cifar import CLASSES
    from vestige_zoo.registry import load_trained_generator

    chosen = snapshot_sources(runs)
    zip_path = data or default_cifar_zip()
    if real and not zip_path.is_file():
        raise InvalidInputError(f"{zip_path} does not exist; give the CIFAR-10 zip (train/ and test/ folders of JPEGs) with --data")
    loaded = {name: load_trained_generator(folder) for name, folder in chosen}
    provenance: dict[str, Any] = {"generators": {}}
    for name, folder in chosen:
        model, _, record = loaded[name]
        run = folder.parent.parent if folder.parent.name == "snapshots" else folder
        provenance["generators"][name] = {"model": model, "run": run.resolve().name, "steps": record.get("steps"),
                                          "training_seed": record.get("seed"), "weights": record["weights"],
                                          "weights_sha256": record["sha256"]}
    sources = ([REAL] if real else []) + [name for name, _ in chosen]
    if real:
        from vestige_zoo.weights import file_sha256

        provenance["cifar10"] = {"file": zip_path.name, "sha256": file_sha256(zip_path)}
    corruptions = Corruptions.from_plugins(pm)
    plan = counts.plan()
    with DatasetWriter(out, name="snapshots", command=command, seed=seed, sources=sources, classes=list(CLASSES),
                       seen_classes=list(SEEN_CLASSES), unseen_classes=list(UNSEEN_CLASSES),
                       perturbations=_perturbation_manifest(corruptions, severity), provenance=provenance,
                       # known history: the samples were never JPEG-compressed, CIFAR's photographs once at quality 75
                       jpeg_history={REAL: [ZOO32_REAL_JPEG_QUALITY] * 2} if real else {}) as writer:
        for number, source in enumerate(sources, 1):
            progress(f"[{number}/{len(sources)}] {source}: {counts.train} train, {counts.val} val, {counts.test} test "
                     "images, and 3 perturbed copies of each test image")
            if source == REAL:
                items = _cifar_images(zip_path, plan, seed, progress)
            else:
                model, generator, _ = loaded[source]
                # sampling seeds of this source's own: seed·100 + its position, then per (split, class)
                items = _sampled_images(model, generator, source, plan, seed * 100 + number, device, progress)
            _write_source(writer, source, items, corruptions, severity=severity, seed=seed)
        return writer.finish()


# ---------------------------------------------------------------------------
# folders


#: Most tiles per image ``build_folders`` keeps with ``tiles`` (``--tiles-per-image``).
TILES_PER_IMAGE = 64


def _centre_crop(image: PILImage.Image, side: int) -> PILImage.Image:
    left, top = (image.width - side) // 2, (image.height - side) // 2
    return image.crop((left, top, left + side, top + side))


def _usable(path: Path, limits: ImageLimits, crop: int | None) -> tuple[int, int]:
    """The decoded size of an acceptable file; a one-line :class:`VestigeError` for any other."""
    try:
        if path.stat().st_size > limits.max_bytes:
            raise InvalidInputError(f"{path} is larger than {limits.max_bytes} bytes")
        image, _ = decode_image(path.read_bytes(), name=str(path), limits=limits)
    except OSError as exc:
        raise InvalidInputError(f"{path} cannot be read: {exc.strerror}") from None
    if crop is not None and min(image.size) < crop:
        raise InvalidInputError(f"{path} is {image.width}×{image.height}, smaller than --crop {crop}")
    return (crop, crop) if crop else image.size


def build_folders(src: Path, out: Path, *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0,
                  severity: int = 3, crop: int | None = None, command: str = "", limits: ImageLimits = ImageLimits(),
                  pm: VestigePluginManager | None = None, progress: Progress = _quiet,
                  warn: Progress = _quiet, tiles: int | None = None,
                  tiles_per_image: int = TILES_PER_IMAGE) -> Dataset:
    """Build a dataset from ``src/<source>/...`` image files (any supported format, any depth).

    With ``tiles`` (a side), every image is split first (train, val, test) and then cut into tiles of that
    side at native resolution on the platform's grid (:mod:`vestige.analysis.tiles`), at most ``tiles_per_image`` of
    them on its evenly spaced sub-grid: the tiles of one image never straddle two splits, and each tile's
    ``origin`` names its file and ``tile`` box (docs/datasets.md)."""
    if tiles is not None and crop is not None:
        raise InvalidInputError("--tiles and --crop exclude each other: tiles keep every image at native resolution")
    if not src.is_dir():
        raise InvalidInputError(f"{src} is not a folder; give a folder with one sub-folder per source (`real` for camera images)")
    if not (0 <= val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise InvalidInputError("--val-fraction and --test-fraction must lie in [0, 1), the test fraction above 0, "
                                "and together below 1")
    folders = sorted(p for p in src.iterdir() if p.is_dir() and not p.name.startswith("."))
    bad = [p.name for p in folders if not _SOURCE_NAME.match(p.name)]
    if bad:
        raise InvalidInputError(f"source folder names may hold letters, digits, '.', '_' and '-' only: rename {', '.join(bad)}")
    folders.sort(key=lambda p: (p.name != REAL, p.name))
    if len(folders) < 2:
        raise InvalidInputError(f"{src} has {len(folders)} source sub-folder(s); a benchmark needs at least two")
    if folders[0].name != REAL:
        warn(f"{src} has no `{REAL}` sub-folder: the dataset has no camera images, so detection accuracy means little")
    corruptions = Corruptions.from_plugins(pm)
    usable: dict[str, list[Path]] = {}
    sizes: dict[str, set[tuple[int, int]]] = {}
    for folder in folders:
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))
        for path in files:
            try:
                size = _usable(path, limits, crop)
                if tiles is not None and min(size) < tiles:
                    raise InvalidInputError(f"{path} is {size[0]}×{size[1]}, smaller than one tile of {tiles}×{tiles}")
                sizes.setdefault(folder.name, set()).add(size)
                usable.setdefault(folder.name, []).append(path)
            except VestigeError as exc:
                warn(f"skipped: {exc}")
    if len({frozenset(s) for s in sizes.values()}) > 1 and crop is None and tiles is None:
        warn("the sources' images differ in size, which a detector can learn instead of content; "
             "--crop N stores the centre N×N of every image")
    splits: dict[str, list[tuple[str, Path]]] = {}
    for folder in folders:
        paths = usable.get(folder.name, [])
        n_test, n_val = round(len(paths) * test_fraction), round(len(paths) * val_fraction)
        if len(paths) - n_test - n_val < 1 or n_test < 1:
            raise InvalidInputError(f"source {folder.name} has {len(paths)} usable images, too few to split into "
                                    "train, val and test; add images")
        order = seeded_rng(seed, "folders", folder.name).permutation(len(paths))
        split_of = {int(i): ("test" if k < n_test else "val" if k < n_test + n_val else "train") for k, i in enumerate(order)}
        splits[folder.name] = [(split_of[i], p) for i, p in enumerate(paths)]
    sources = [f.name for f in folders]
    with DatasetWriter(out, name=src.resolve().name, command=command, seed=seed, sources=sources, classes=[],
                       seen_classes=[], unseen_classes=[], perturbations=_perturbation_manifest(corruptions, severity),
                       provenance={"folder": src.resolve().name, "crop": crop,
                                   **({"tiles": tiles, "tiles_per_image": tiles_per_image} if tiles else {})}) as writer:
        for source in sources:
            def items(source: str = source) -> Iterator[tuple[str, str | None, PILImage.Image, Any]]:
                for split in ("train", "val", "test"):
                    for s, path in splits[source]:
                        if s == split:
                            image, _ = decode_image(path.read_bytes(), name=str(path), limits=limits)
                            image = to_rgb(image)
                            file = path.relative_to(src).as_posix()
                            if tiles is None:
                                yield split, None, _centre_crop(image, crop) if crop else image, {"file": file}
                                continue
                            grid = TileGrid.cover(image.width, image.height, tiles)
                            for column, row in grid.chosen(tiles_per_image):
                                x, y = grid.origin(column, row)
                                yield split, None, image.crop((x, y, x + tiles, y + tiles)), {
                                    "file": file, "image_size": [image.width, image.height], "tile": [x, y, tiles]}

            counts = _write_source(writer, source, items(), corruptions, severity=severity, seed=seed)
            progress(f"{source}: {counts['train']} train, {counts['val']} val, {counts['test']} test images")
        return writer.finish()
