"""Benchmark datasets: one folder of PNGs and a manifest that hashes every file.

Layout::

    DIR/manifest.json                       canonical JSON (sorted keys), described below
    DIR/files/<split>/<source>/NNNNN.png    a clean image (split: train, val, test)
    DIR/files/test/<source>/NNNNN-<condition>.png
                                            a perturbed copy of test image NNNNN

The manifest holds ``format`` (``vestige-dataset/1``), ``name``, ``command``
(the command line that built it), ``vestige_version``, ``seed``, ``sources``
(``real`` first, then generator names as ``vestige zoo list`` names them),
``classes``, ``seen_classes``, ``unseen_classes``, ``encoding`` (``png``),
``perturbations`` (the seen and unseen corruption names, their severity and the
re-sharing chain), ``provenance`` (what the images were made from: the CIFAR-10
zip's and the generators' weights' SHA-256, or the source folder) and ``records``: one per file with its ``path``, ``sha256``,
``size``, ``source``, ``class``, ``split``, ``condition``, ``operations``
(perturbation records, ``[]`` for a clean image), ``parent`` (the clean test
image it derives from) and ``origin`` (where the clean image came from).

A dataset *is* its manifest: its identity is the SHA-256 of ``manifest.json``'s
bytes, and :func:`open_dataset` checks every file against it. Every file is
written by :func:`encode_png` (8-bit RGB, one encoder setting, no metadata
chunks), so the container never tells one source from another.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import re
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image as PILImage

from vestige import __version__
from vestige.core.errors import ConflictError, InvalidInputError, PluginError
from vestige.evidence.custody import canonical_json
from vestige.plugin import ImageInput
from vestige.plugin.training import REAL, Example, TrainingSet

if TYPE_CHECKING:
    from vestige.core.plugins import VestigePluginManager
    from vestige.plugin import Perturbation

__all__ = [
    "CONDITIONS",
    "FORMAT",
    "SPLITS",
    "Corruptions",
    "Dataset",
    "DatasetWriter",
    "Record",
    "encode_png",
    "open_dataset",
]

FORMAT = "vestige-dataset/1"
MANIFEST = "manifest.json"
SPLITS = ("train", "val", "test")
#: Test conditions: the clean test images and three perturbed copies of each.
CONDITIONS = ("clean", "seen-perturbations", "unseen-perturbations", "reshared")
CLASS_GROUPS = ("seen", "unseen")
#: The JPEG quality of the CIFAR-10 zip zoo32's real images come from (``../shared/data/README.md``).
ZOO32_REAL_JPEG_QUALITY = 75
#: The re-sharing chain of the mission: a site re-encodes, then shrinks.
RESHARE_CHAIN: tuple[dict[str, Any], ...] = (
    {"op": "jpeg", "params": {"quality": 60}},
    {"op": "resize", "params": {"scale": 0.75}},
)
_PATH = re.compile(r"^files/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*\.png$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


def encode_png(image: PILImage.Image) -> bytes:
    """The one encoding of every dataset file: 8-bit RGB PNG, zlib level 9, no ancillary chunks.

    The pixels are copied into a fresh image first, so nothing the source
    file carried (ICC profile, gamma, text, EXIF, dpi) can reach the encoder.
    """
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    buf = io.BytesIO()
    PILImage.fromarray(np.ascontiguousarray(pixels), "RGB").save(buf, "PNG", compress_level=9, optimize=False)
    return buf.getvalue()


def seeded_rng(*parts: Any) -> np.random.Generator:
    """A generator seeded by the text of ``parts``: the same parts, the same draws, in any build order."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


@dataclass(frozen=True)
class Record:
    """One file of a dataset, as its manifest describes it."""

    path: str
    sha256: str
    size: int
    source: str
    klass: str | None
    split: str
    condition: str = "clean"
    operations: tuple[Mapping[str, Any], ...] = ()
    parent: str | None = None
    origin: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "size": self.size, "source": self.source,
                "class": self.klass, "split": self.split, "condition": self.condition,
                "operations": [dict(op) for op in self.operations], "parent": self.parent, "origin": self.origin}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any], *, where: str) -> Record:
        try:
            record = cls(path=value["path"], sha256=value["sha256"], size=int(value["size"]), source=value["source"],
                         klass=value.get("class"), split=value["split"], condition=value.get("condition", "clean"),
                         operations=tuple(value.get("operations") or ()), parent=value.get("parent"),
                         origin=value.get("origin"))
        except (KeyError, TypeError, ValueError):
            raise InvalidInputError(f"{where}: a record lacks path, sha256, size, source or split; rebuild the dataset") from None
        if not isinstance(record.path, str) or not _PATH.match(record.path) or ".." in record.path.split("/"):
            raise InvalidInputError(f"{where}: record path {record.path!r} is not a files/... PNG path inside the dataset")
        if not isinstance(record.sha256, str) or not _HEX64.match(record.sha256):
            raise InvalidInputError(f"{where}: record {record.path} has no valid SHA-256")
        if record.split not in SPLITS or record.condition not in CONDITIONS:
            raise InvalidInputError(f"{where}: record {record.path} has split {record.split!r} / condition "
                                    f"{record.condition!r}; splits are {', '.join(SPLITS)}, conditions {', '.join(CONDITIONS)}")
        return record


class Dataset:
    """An opened dataset: its manifest, its identity, and its images decoded as detectors receive them."""

    def __init__(self, path: Path, manifest_bytes: bytes, manifest: Mapping[str, Any], records: Sequence[Record]) -> None:
        self.path = path
        self.manifest = manifest
        self.sha256 = hashlib.sha256(manifest_bytes).hexdigest()
        self._records = list(records)
        self.name: str = manifest.get("name", path.name)
        self.sources: tuple[str, ...] = tuple(manifest["sources"])
        self.classes: tuple[str, ...] = tuple(manifest.get("classes") or ())
        self.seen_classes: tuple[str, ...] = tuple(manifest.get("seen_classes") or ())
        self.unseen_classes: tuple[str, ...] = tuple(manifest.get("unseen_classes") or ())

    def __repr__(self) -> str:
        return f"Dataset({str(self.path)!r}, sha256={self.sha256[:12]}, {len(self._records)} files)"

    def class_group(self, record: Record) -> str:
        """``unseen`` for an image of a class kept out of training, else ``seen`` (also when there is no class)."""
        return "unseen" if record.klass is not None and record.klass in self.unseen_classes else "seen"

    def records(self, split: str | None = None, condition: str | None = None, class_group: str | None = None) -> list[Record]:
        """The records of a split, a test condition and a class group (``seen``/``unseen``), in manifest order."""
        for value, allowed, what in ((split, SPLITS, "split"), (condition, CONDITIONS, "condition"),
                                     (class_group, CLASS_GROUPS, "class group")):
            if value is not None and value not in allowed:
                raise InvalidInputError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
        return [r for r in self._records
                if (split is None or r.split == split) and (condition is None or r.condition == condition)
                and (class_group is None or self.class_group(r) == class_group)]

    def read(self, record: Record) -> bytes:
        """A file's bytes, checked against the manifest again (the folder may have changed since it was opened)."""
        return _read_checked(self.path, record)

    def inputs(self, records: Iterable[Record]) -> list[ImageInput]:
        """The images as the platform hands them to detectors (:func:`vestige.analysis.detect.make_input`)."""
        from vestige.analysis.detect import make_input

        return [make_input(self.read(r), name=r.path) for r in records]

    def training_set(self, augment: bool = True, *, pm: VestigePluginManager | None = None) -> TrainingSet:
        """The train and val splits as a :class:`TrainingSet`; ``augment`` applies one random seen corruption."""
        train, val = (self.records(split=s, condition="clean") for s in ("train", "val"))
        examples = [Example(image=i, source=r.source, klass=r.klass) for r, i in zip(train, self.inputs(train))]
        validation = [Example(image=i, source=r.source, klass=r.klass) for r, i in zip(val, self.inputs(val))]
        augmenter = Corruptions.from_plugins(pm).augmenter() if augment else None
        return TrainingSet(train=examples, validation=validation, sources=self.sources, dataset_sha256=self.sha256,
                           name=f"dataset {self.name}", augment=augmenter, jpeg_history=self.jpeg_history())

    def jpeg_history(self) -> dict[str, tuple[int, int]] | None:
        """The JPEG qualities each source went through before it became pixels, ``None`` when not recorded.

        A manifest may say it (``jpeg_history``: source -> [lowest, highest]).
        zoo32 does not, but its real images are the CIFAR-10 zip's JPEGs of
        quality :data:`ZOO32_REAL_JPEG_QUALITY` and its generated ones were
        never JPEG-compressed, so its history is known.
        """
        recorded = self.manifest.get("jpeg_history")
        if isinstance(recorded, Mapping):
            return {str(k): (int(v[0]), int(v[1])) for k, v in recorded.items()}
        if self.name == "zoo32":
            return {REAL: (ZOO32_REAL_JPEG_QUALITY, ZOO32_REAL_JPEG_QUALITY)} if REAL in self.sources else {}
        return None


def _read_checked(root: Path, record: Record) -> bytes:
    try:
        data = (root / record.path).read_bytes()
    except FileNotFoundError:
        raise InvalidInputError(f"dataset {root}: {record.path} is missing; the dataset is incomplete, rebuild it") from None
    except OSError as exc:
        raise InvalidInputError(f"dataset {root}: cannot read {record.path}: {exc.strerror}") from None
    if len(data) != record.size or hashlib.sha256(data).hexdigest() != record.sha256:
        raise InvalidInputError(f"dataset {root}: {record.path} does not match its SHA-256 in manifest.json "
                                "(modified or damaged); rebuild the dataset")
    return data


def open_dataset(path: Path | str, verify: bool = True) -> Dataset:
    """Open the dataset in folder ``path``; with ``verify``, every file is checked against the manifest."""
    root = Path(path)
    try:
        manifest_bytes = (root / MANIFEST).read_bytes()
    except OSError:
        raise InvalidInputError(f"{root} is not a Vestige dataset (no readable {MANIFEST}); build one with "
                                "`vestige bench build`") from None
    try:
        manifest = json.loads(manifest_bytes)
    except ValueError:
        raise InvalidInputError(f"{root / MANIFEST} is not valid JSON; rebuild the dataset") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise InvalidInputError(f"{root / MANIFEST} is not a {FORMAT} manifest (format {found!r})")
    if not isinstance(manifest.get("sources"), list) or not isinstance(manifest.get("records"), list):
        raise InvalidInputError(f"{root / MANIFEST} lacks its sources or records; rebuild the dataset")
    where = str(root / MANIFEST)
    records = [Record.from_dict(r, where=where) for r in manifest["records"]]
    unknown = sorted({r.source for r in records} - set(manifest["sources"]))
    if unknown:
        raise InvalidInputError(f"{where}: records name sources not in its source list: {', '.join(unknown)}")
    if verify:
        for record in records:
            _read_checked(root, record)
    return Dataset(root, manifest_bytes, manifest, records)


# ---------------------------------------------------------------------------
# corruptions: the perturbation plugin's seen and unseen sets


@dataclass
class Corruptions:
    """The corruptions a dataset perturbs with: the perturbation plugin's seen and unseen sets.

    ``seen`` may be used in training (augmentation); ``unseen`` only ever in
    tests. Each takes a ``severity`` from 1 to 5. ``operations`` holds every
    registered perturbation operation (the re-sharing chain uses ``jpeg`` and
    ``resize``).
    """

    seen: tuple[str, ...]
    unseen: tuple[str, ...]
    operations: Mapping[str, Perturbation] = field(repr=False)
    draw: Callable[..., tuple[PILImage.Image, dict]] = field(repr=False)

    @classmethod
    def from_plugins(cls, pm: VestigePluginManager | None = None) -> Corruptions:
        from vestige.analysis.robustness import get_perturbations
        from vestige.core.plugins import get_plugin_manager
        from vestige.plugin.augment import SEEN_CORRUPTIONS, UNSEEN_CORRUPTIONS, random_corruption

        operations = get_perturbations(pm if pm is not None else get_plugin_manager())
        missing = sorted((set(SEEN_CORRUPTIONS) | set(UNSEEN_CORRUPTIONS)) - set(operations))
        if missing:
            raise PluginError(f"corruption operations {', '.join(missing)} are not registered; check `vestige plugins`")
        return cls(tuple(SEEN_CORRUPTIONS), tuple(UNSEEN_CORRUPTIONS), operations,
                   functools.partial(random_corruption, operations=operations))

    def random(self, image: PILImage.Image, group: str, severity: int, rng: np.random.Generator) -> tuple[PILImage.Image, dict]:
        """One corruption of ``group`` (``seen``/``unseen``) chosen by ``rng``, at ``severity``, and its op record."""
        names = self.seen if group == "seen" else self.unseen
        return self.draw(image, rng, names=names, severities=(int(severity),))

    def augmenter(self) -> Callable[[PILImage.Image, np.random.Generator], PILImage.Image]:
        """What :attr:`TrainingSet.augment` holds: one random seen corruption at a random severity (1–5)."""
        seen, draw = self.seen, self.draw

        def augment(image: PILImage.Image, rng: np.random.Generator) -> PILImage.Image:
            return draw(image, rng, names=seen)[0]

        return augment


def apply_operations(image: PILImage.Image, operations: Sequence[Mapping[str, Any]],
                     available: Mapping[str, Perturbation], rng: np.random.Generator) -> PILImage.Image:
    """``image`` after ``operations`` in order; the pixels only (a JPEG step's file is decoded, not kept)."""
    for op in operations:
        if op["op"] not in available:
            raise PluginError(f"no perturbation operation named {op['op']!r} is installed; check `vestige plugins`")
        image = available[op["op"]].apply(image, rng=rng, **op.get("params", {}))
    return image


# ---------------------------------------------------------------------------
# writing


class DatasetWriter:
    """Builds a dataset in ``DIR.partial`` and renames it to ``DIR`` when complete.

    Use as a context manager: an exception removes the partial folder, so an
    interrupted build leaves nothing that looks like a dataset.
    """

    def __init__(self, out: Path, **manifest: Any) -> None:
        self.out = Path(out)
        if self.out.exists() and (not self.out.is_dir() or any(self.out.iterdir())):
            raise ConflictError(f"{self.out} exists and is not empty; choose a new --out folder")
        self.partial = self.out.with_name(self.out.name + ".partial")
        if self.partial.exists():
            raise ConflictError(f"{self.partial} exists (a build still running, or one that was killed); "
                                "remove it and build again")
        self.manifest = {"format": FORMAT, "vestige_version": __version__, "encoding": "png", **manifest}
        self.records: list[Record] = []
        self._numbers: dict[tuple[str, str], int] = {}

    def __enter__(self) -> DatasetWriter:
        (self.partial / "files").mkdir(parents=True)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.partial, ignore_errors=True)

    def add(self, image: PILImage.Image, *, source: str, klass: str | None, split: str, condition: str = "clean",
            operations: Sequence[Mapping[str, Any]] = (), parent: Record | None = None, origin: Any = None) -> Record:
        """Encode and write one image; a perturbed copy is named after its ``parent``."""
        if parent is None:
            number = self._numbers.get((split, source), 0)
            self._numbers[(split, source)] = number + 1
            path = f"files/{split}/{source}/{number:05d}.png"
        else:
            path = parent.path.removesuffix(".png") + f"-{condition}.png"
        data = encode_png(image)
        target = self.partial / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        record = Record(path=path, sha256=hashlib.sha256(data).hexdigest(), size=len(data), source=source, klass=klass,
                        split=split, condition=condition, operations=tuple(dict(op) for op in operations),
                        parent=None if parent is None else parent.path, origin=origin)
        self.records.append(record)
        return record

    def finish(self) -> Dataset:
        """Write the manifest and move the dataset into place."""
        order = {s: i for i, s in enumerate(SPLITS)}
        records = sorted(self.records, key=lambda r: (order[r.split], r.path))
        manifest = {**self.manifest, "records": [r.to_dict() for r in records]}
        data = canonical_json(manifest).encode("utf-8")
        (self.partial / MANIFEST).write_bytes(data)
        if self.out.is_dir():
            self.out.rmdir()  # empty, checked at the start
        self.partial.rename(self.out)
        return Dataset(self.out, data, json.loads(data), records)
