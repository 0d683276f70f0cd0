"""Model weight files: safetensors read only after their SHA-256 is checked, and pickled checkpoints converted.

Plugins reach these through :mod:`vestige.plugin` (``load_verified``,
``file_sha256``, ``WeightsMismatchError``). A weight file is named
``<name>-<sha256[:8]>.safetensors`` (house rule 6); :func:`convert_checkpoint`
writes one from a pickled torch checkpoint, which it reads with
``torch.load(weights_only=True)``: tensors and plain containers only, never
arbitrary objects.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vestige.errors import InvalidInputError, NotFoundError, StoreError

if TYPE_CHECKING:
    import torch

#: Keys under which training scripts commonly nest the model's state in a checkpoint.
STATE_KEYS = ("state_dict", "model_state_dict", "model", "generator", "netG", "G", "ema")


class WeightsMismatchError(StoreError):
    """A weight file's bytes do not hash to the SHA-256 recorded for it."""


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

    A missing file raises :class:`~vestige.errors.NotFoundError`, a file whose
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
