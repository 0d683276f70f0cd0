"""Model weight files: safetensors read only after their SHA-256 is checked, and pickled checkpoints converted.

Plugins reach these through :mod:`vestige.plugin` (``load_verified``,
``file_sha256``, ``WeightsMismatchError``, ``ShippedManifest``). A weight file is named
``<name>-<sha256[:8]>.safetensors`` (house rule 6); :func:`convert_checkpoint`
writes one from a pickled torch checkpoint, which it reads with
``torch.load(weights_only=True)``: tensors and plain containers only, never
arbitrary objects.

A plugin that ships weight files keeps them in one folder with a
``manifest.json`` of format ``vestige-shipped/1`` (:class:`ShippedManifest`)::

    {"format": "vestige-shipped/1", "default": "NAME" or null, "note": "optional, for people",
     "entries": {"NAME": {"file": "NAME-<sha8>.safetensors", "sha256": "...", "size": 123, ...metadata}}}

Every read of an entry's bytes checks them against the recorded SHA-256.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vestige.core.errors import InvalidInputError, NotFoundError, StoreError

if TYPE_CHECKING:
    import torch

#: Keys under which training scripts commonly nest the model's state in a checkpoint.
STATE_KEYS = ("state_dict", "model_state_dict", "model", "generator", "netG", "G", "ema")


#: The ``format`` of a shipped-weights manifest, and its file name in the weights folder.
SHIPPED_FORMAT = "vestige-shipped/1"
MANIFEST_FILE = "manifest.json"
#: What a user is told to do about a shipped file that is missing or modified.
REINSTALL = "reinstall the plugin"


class WeightsMismatchError(StoreError, InvalidInputError):
    """A weight file's bytes do not hash to the SHA-256 recorded for it.

    Also an :class:`~vestige.core.errors.InvalidInputError`: a modified file cannot be accepted.
    """


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, hex."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_verified(path: str | Path, sha256: str, *, remedy: str = "restore the file the plugin ships or reinstall it"
                  ) -> dict[str, torch.Tensor]:
    """The tensors of safetensors file ``path`` after checking that its SHA-256 is ``sha256``; floats as fp32.

    A missing file raises :class:`~vestige.core.errors.NotFoundError`, a file whose
    hash differs :class:`WeightsMismatchError`; both messages end with ``remedy``.
    """
    path = Path(path)
    if not path.is_file():
        raise NotFoundError(f"weight file {path} is missing; {remedy}.")
    actual = file_sha256(path)
    if actual != sha256.lower():
        raise WeightsMismatchError(f"weight file {path.name} does not match its recorded SHA-256 ({actual[:16]}…, "
                                   f"expected {sha256[:16]}…); it was modified or damaged, so {remedy}.")
    from safetensors.torch import load_file  # torch is imported on first load, not with the plugin

    return {k: (v.float() if v.is_floating_point() else v) for k, v in load_file(str(path)).items()}


@dataclass(frozen=True)
class ShippedEntry:
    """One entry of a :class:`ShippedManifest`: a file of the folder, its SHA-256 and size, and free metadata."""

    name: str
    folder: Path
    file: str
    sha256: str
    size: int
    metadata: dict[str, Any] = field(default_factory=dict)
    remedy: str = REINSTALL

    @property
    def path(self) -> Path:
        return self.folder / self.file

    def to_dict(self) -> dict[str, Any]:
        """The entry as the manifest records it."""
        return {**self.metadata, "file": self.file, "sha256": self.sha256, "size": self.size}

    def read_bytes(self) -> bytes:
        """The file's bytes after checking their SHA-256 (a missing or modified file is refused in one line)."""
        if not self.path.is_file():
            raise NotFoundError(f"weight file {self.path} is missing; {self.remedy}.")
        data = self.path.read_bytes()
        actual = hashlib.sha256(data).hexdigest()
        if actual != self.sha256.lower():
            raise WeightsMismatchError(f"weight file {self.file} does not match its recorded SHA-256 ({actual[:16]}…, "
                                       f"expected {self.sha256[:16]}…); it was modified or damaged, so {self.remedy}.")
        return data

    def load(self) -> dict[str, torch.Tensor]:
        """The file's tensors after checking its SHA-256 (:func:`load_verified`); floats as fp32."""
        return load_verified(self.path, self.sha256, remedy=self.remedy)


class ShippedManifest:
    """The ``manifest.json`` of a folder of shipped weight files (format ``vestige-shipped/1``).

    ``default`` names the entry used when none is named (or is ``None``);
    ``entries`` maps names to :class:`ShippedEntry`; ``note`` is free text
    for people (or ``None``). A folder without a manifest has no entries.
    ``remedy`` ends every error about the folder.
    """

    def __init__(self, folder: str | Path, entries: Mapping[str, ShippedEntry] | None = None,
                 default: str | None = None, *, note: str | None = None, remedy: str = REINSTALL) -> None:
        self.folder = Path(folder)
        self.entries: dict[str, ShippedEntry] = dict(entries or {})
        self.default = default
        self.note = note
        self.remedy = remedy

    @property
    def path(self) -> Path:
        return self.folder / MANIFEST_FILE

    @classmethod
    def read(cls, folder: str | Path, *, remedy: str = REINSTALL) -> ShippedManifest:
        """The manifest of ``folder``; empty when there is none, refused in one line when it cannot be used."""
        manifest = cls(folder, remedy=remedy)
        if not manifest.path.is_file():
            return manifest
        try:
            content = json.loads(manifest.path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise InvalidInputError(f"{manifest.path} is not valid JSON; {remedy}.") from None
        found = content.get("format") if isinstance(content, dict) else None
        if found != SHIPPED_FORMAT:
            raise InvalidInputError(f"{manifest.path} is not a shipped-weights manifest of format {SHIPPED_FORMAT} "
                                    f"(format {found!r}); {remedy}.")
        entries, default, note = content.get("entries"), content.get("default"), content.get("note")
        try:
            if not isinstance(entries, dict) or not (default is None or default in entries) or not (
                    note is None or isinstance(note, str)):
                raise TypeError
            for name, entry in entries.items():
                metadata = {k: v for k, v in entry.items() if k not in ("file", "sha256", "size")}
                file, sha256, size = entry["file"], entry["sha256"], entry["size"]
                if not (isinstance(file, str) and Path(file).name == file and isinstance(sha256, str)
                        and isinstance(size, int)):
                    raise TypeError
                manifest.entries[name] = ShippedEntry(name, manifest.folder, file, sha256, size, metadata, remedy)
        except (TypeError, KeyError, AttributeError):
            raise InvalidInputError(f"{manifest.path} has an incomplete entry or names an unknown default; {remedy}.") from None
        manifest.default, manifest.note = default, note
        return manifest

    def __len__(self) -> int:
        return len(self.entries)

    def __iter__(self) -> Iterator[ShippedEntry]:
        return iter(self.entries[name] for name in sorted(self.entries))

    def __contains__(self, name: object) -> bool:
        return name in self.entries

    def entry(self, name: str | None = None) -> ShippedEntry:
        """Entry ``name``, or the default one when ``name`` is ``None``; an unknown name lists the known ones."""
        name = self.default if name is None else name
        if name not in self.entries:
            known = ", ".join(sorted(self.entries)) or "none"
            asked = "no default entry" if name is None else f"no entry {name!r}"
            raise NotFoundError(f"{self.path} has {asked}; it has: {known}")
        return self.entries[name]

    def with_sha256(self, sha256: str) -> ShippedEntry | None:
        """The entry whose file has SHA-256 ``sha256``, or ``None``."""
        return next((e for e in self.entries.values() if e.sha256 == sha256), None)

    def add(self, name: str, data: bytes, metadata: Mapping[str, Any] | None = None, *, make_default: bool = False,
            suffix: str = ".safetensors") -> ShippedEntry:
        """Write ``data`` as ``<name>-<sha256[:8]><suffix>`` and record it as entry ``name`` (call :meth:`write` after).

        The file of the entry it replaces is removed when its name differs.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        file = f"{name}-{sha256[:8]}{suffix}"
        self.folder.mkdir(parents=True, exist_ok=True)
        partial = self.folder / f".{file}.partial"
        partial.write_bytes(data)
        partial.replace(self.folder / file)
        old = self.entries.get(name)
        if old is not None and old.file != file:
            old.path.unlink(missing_ok=True)
        self.entries[name] = ShippedEntry(name, self.folder, file, sha256, len(data), dict(metadata or {}), self.remedy)
        if make_default:
            self.default = name
        return self.entries[name]

    def to_dict(self) -> dict[str, Any]:
        content = {"format": SHIPPED_FORMAT, "default": self.default,
                   "entries": {name: entry.to_dict() for name, entry in self.entries.items()}}
        return content if self.note is None else {**content, "note": self.note}

    def write(self) -> Path:
        """Write the manifest: keys sorted, indented, UTF-8, ending with a newline."""
        self.folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        partial = self.folder / f".{MANIFEST_FILE}.partial"
        partial.write_text(text, encoding="utf-8")
        partial.replace(self.path)
        return self.path


def state_of_checkpoint(checkpoint: Any, key: str | None = None) -> dict[str, torch.Tensor]:
    """The flat name -> tensor state inside a loaded checkpoint (a state dict, or one nested under ``key``
    or a usual key such as ``state_dict``); a ``module.`` prefix (DataParallel) is dropped."""
    import torch

    if key is not None:
        if not isinstance(checkpoint, Mapping) or key not in checkpoint:
            found = ", ".join(map(str, checkpoint)) if isinstance(checkpoint, Mapping) else type(checkpoint).__name__
            raise InvalidInputError(f"the checkpoint has no entry {key!r}; it has: {found}")
        checkpoint = checkpoint[key]
    elif isinstance(checkpoint, Mapping) and not any(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        nested = [k for k in STATE_KEYS if isinstance(checkpoint.get(k), Mapping)]
        if len(nested) != 1:
            raise InvalidInputError(f"cannot tell which entry of the checkpoint holds the weights (entries: "
                                    f"{', '.join(map(str, checkpoint))}); name it with --key")
        checkpoint = checkpoint[nested[0]]
    if not isinstance(checkpoint, Mapping):
        raise InvalidInputError(f"the checkpoint holds a {type(checkpoint).__name__}, not a state dict of tensors; "
                                "save `model.state_dict()` and convert that")
    tensors = {str(k): v for k, v in checkpoint.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise InvalidInputError("the checkpoint's state holds no tensors")
    if all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def convert_checkpoint(checkpoint: Path, out: Path, *, key: str | None = None, name: str | None = None) -> tuple[Path, str]:
    """Write the weights of pickled torch checkpoint ``checkpoint`` as ``<name>-<sha256[:8]>.safetensors``.

    ``out`` is a folder (the file is named there, ``name`` defaulting to the
    checkpoint's stem) or a file path ending ``.safetensors`` (used as given).
    The pickle is read with ``torch.load(weights_only=True)``. Tensors keep
    their dtype. Returns the written path and its SHA-256; nothing is left
    behind on failure.
    """
    import pickle

    import torch
    from safetensors.torch import save_file

    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise NotFoundError(f"checkpoint {checkpoint} does not exist")
    try:
        loaded = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InvalidInputError(f"{checkpoint} cannot be read as a weights-only torch checkpoint ({first}); "
                                "save `model.state_dict()` with torch.save and convert that") from None
    tensors = {k: v.detach().contiguous() for k, v in state_of_checkpoint(loaded, key).items()}
    out = Path(out)
    folder = out.parent if out.suffix == ".safetensors" else out
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{checkpoint.stem}.partial.safetensors"
    try:
        # No header metadata: safetensors keeps it in an unordered map, which would make the hash unstable.
        save_file(tensors, str(partial))
        sha = file_sha256(partial)
        final = out if out.suffix == ".safetensors" else folder / f"{name or checkpoint.stem}-{sha[:8]}.safetensors"
        partial.replace(final)
    finally:
        partial.unlink(missing_ok=True)
    return final, sha
