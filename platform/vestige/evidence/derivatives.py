"""Derived images: a perturbation chain applied to an image of a case, kept in that case with its applied history.

``vestige perturb`` and the robustness probes both store their results
through ``add_derivative``: a *derived* image (ingested like evidence, so
custody records it) and one ``Perturbation`` row with ``basis="applied"``,
the parent, and the whole chain as one record.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa
from PIL import Image as PILImage
from sqlalchemy.orm import Session

from vestige.core.errors import InvalidInputError, PluginError
from vestige.core.plugins import VestigePluginManager
from vestige.core.workspace import Workspace
from vestige.db.models import Image, Perturbation
from vestige.evidence.cases import require_open
from vestige.evidence.imagefile import ImageLimits, inspect_image, open_image, to_rgb
from vestige.evidence.ingest import Acquisition, Ingester
from vestige.plugin import ENCODED_IMAGE_KEY, Perturbation as PerturbationOperation

EXTENSIONS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}


def get_perturbations(pm: VestigePluginManager) -> dict[str, PerturbationOperation]:
    """Every perturbation operation the plugins provide, by name."""
    found: dict[str, PerturbationOperation] = {}
    for provided in pm.hook.vestige_perturbations():
        for operation in provided or []:
            found.setdefault(operation.name, operation)
    return found


def apply_chain(image: PILImage.Image, operations: Sequence[Mapping[str, Any]],
                available: Mapping[str, PerturbationOperation], *, seed: bytes) -> bytes:
    """Apply ``operations`` in order and encode the result (PNG, or the bytes the last operation produced).

    The generator all operations draw from is seeded with the first 8 bytes of SHA-256(``seed``).
    """
    rng = np.random.default_rng(int.from_bytes(hashlib.sha256(seed).digest()[:8], "big"))
    encoded = None
    for op in operations:
        if op["op"] not in available:
            known = ", ".join(sorted(available)) or "none"
            raise PluginError(f"no perturbation operation named {op['op']!r} is installed; installed: {known}")
        before = image.info.get(ENCODED_IMAGE_KEY)
        image = available[op["op"]].apply(image, rng=rng, **op.get("params", {}))
        # Pillow copies ``info`` into every image it derives: bytes an earlier step left are not this step's file.
        after = image.info.get(ENCODED_IMAGE_KEY)
        encoded = after if isinstance(after, bytes) and after is not before else None
    if encoded is not None:
        return encoded
    buf = io.BytesIO()
    image.save(buf, "PNG")  # lossless: the derivative holds exactly the operation's pixels
    return buf.getvalue()


def chain_name(operations: Sequence[Mapping[str, Any]]) -> str:
    """A short stable name: ``jpeg-90``, ``resize-0.5``, ``jpeg-70+resize-0.5-lanczos``."""
    return "+".join("-".join([str(op["op"]), *(str(v) for v in op.get("params", {}).values())]) for op in operations)


def describe_chain(operations: Sequence[Mapping[str, Any]]) -> str:
    """``jpeg(quality=70), resize(scale=0.5, filter=lanczos)``."""
    return ", ".join(f"{op['op']}({', '.join(f'{k}={v}' for k, v in op.get('params', {}).items())})"
                     for op in operations)


def parse_operation(text: str, available: Mapping[str, PerturbationOperation]) -> dict[str, Any]:
    """``"resize:scale=0.5,filter=bicubic"`` as an op record with every parameter, typed like its default."""
    name, _, rest = text.partition(":")
    name = name.strip()
    if name not in available:
        raise InvalidInputError(f"no perturbation operation named {name!r}; operations: {', '.join(sorted(available))}")
    defaults = dict(available[name].parameters)
    params = dict(defaults)
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, equals, value = (s.strip() for s in item.partition("="))
        if key not in defaults:
            known = ", ".join(defaults) or "none"
            raise InvalidInputError(f"{name} has no parameter {key!r}; its parameters: {known}")
        if not equals:
            raise InvalidInputError(f"{name} {key} needs a value: {name}:{key}=VALUE")
        params[key] = _typed(name, key, value, defaults[key])
    return {"op": name, "params": params}


def _typed(op: str, key: str, value: str, default: Any) -> Any:
    try:
        if isinstance(default, bool):
            return {"true": True, "false": False}[value.lower()]
        if isinstance(default, int):
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (KeyError, ValueError):
        kind = {bool: "true or false", int: "an integer", float: "a number"}[type(default)]
        raise InvalidInputError(f"{op} {key} takes {kind}, not {value!r}") from None
    return value


def add_derivative(ingester: Ingester, parent: Image, data: bytes, operations: Sequence[Mapping[str, Any]], *,
                   source: str) -> Image:
    """Ingest ``data``, made from ``parent`` by ``operations``, as a derived image with one applied record."""
    stem = parent.original_filename.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    label = f"{stem}.{chain_name(operations)}"
    facts = inspect_image(data, name=label, limits=ingester.image_limits)
    ingester.acquisition = Acquisition(source=source, actor=ingester.acquisition.actor)
    image = ingester.add_image(data, facts, filename=f"{label}.{EXTENSIONS.get(facts.format, 'png')}",
                               origin="derived")
    ingester.session.add(Perturbation(image_id=image.id, parent_id=parent.id, basis="applied",
                                      operations=[dict(op) for op in operations]))
    ingester.session.flush()
    return image


@dataclass(frozen=True)
class Derivation:
    """The derived image, and whether this call made it (``False``: the same chain and seed had made it before)."""

    image: Image
    created: bool


def derive_image(workspace: Workspace, session: Session, parent: Image, operations: Sequence[Mapping[str, Any]],
                 available: Mapping[str, PerturbationOperation], *, seed: int, actor: str) -> Derivation:
    """Apply ``operations`` to ``parent`` with ``seed`` and keep the result in its case; the caller commits.

    Nothing is written when the case is closed, an operation refuses its
    parameters, or the result is already a derivative of ``parent`` by the
    same chain.
    """
    case = parent.case
    require_open(case)
    cfg = workspace.config.ingest
    limits = ImageLimits.from_config(cfg)
    decoded = to_rgb(open_image(workspace.store.get(parent.blob_sha256), name=parent.original_filename, limits=limits))
    try:
        data = apply_chain(decoded, operations, available, seed=str(seed).encode())
    except ValueError as exc:
        raise InvalidInputError(str(exc)) from None
    sha256 = hashlib.sha256(data).hexdigest()
    if sha256 == parent.blob_sha256:
        raise InvalidInputError(f"{describe_chain(operations)} leaves image {parent.id} unchanged; nothing to add")
    for image, recorded in session.execute(
        sa.select(Image, Perturbation.operations).join(Perturbation, Perturbation.image_id == Image.id)
        .where(Perturbation.basis == "applied", Perturbation.parent_id == parent.id, Image.blob_sha256 == sha256)
    ).all():
        if list(recorded) == [dict(op) for op in operations]:
            return Derivation(image, created=False)
    ingester = Ingester(workspace, session, case, Acquisition(source="", actor=actor))
    source = f"vestige perturb of image {parent.id}: {describe_chain(operations)}, seed {seed}"
    return Derivation(add_derivative(ingester, parent, data, operations, source=source), created=True)
