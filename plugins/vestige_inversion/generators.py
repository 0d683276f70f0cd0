"""The candidate generators: every ``GeneratorSpec`` the installed plugins register, loaded for inversion."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps

from vestige.plugin import GeneratorSpec, NotFoundError
from vestige_inversion.optimise import draw_latents, run_generator


def registered_generators() -> dict[str, tuple[str, GeneratorSpec]]:
    """Every generator the installed (allowed) plugins register through ``vestige_generators``, by name, with
    the name of the plugin that registers it (the first one, when two register the same name)."""
    from vestige.plugin import load_configuration
    from vestige.plugin.services import get_plugin_manager

    pm = get_plugin_manager(load_configuration().plugins.allow)
    found: dict[str, tuple[str, GeneratorSpec]] = {}
    for impl in reversed(pm.hook.vestige_generators.get_hookimpls()):  # pluggy lists the last registered first
        for spec in impl.function() or []:
            found.setdefault(spec.name, (str(pm.get_name(impl.plugin)), spec))
    return found


def generator_specs() -> dict[str, GeneratorSpec]:
    """Every generator the installed (allowed) plugins register through ``vestige_generators``, by name."""
    return {name: spec for name, (_, spec) in registered_generators().items()}


def get_spec(name: str, specs: dict[str, GeneratorSpec] | None = None) -> GeneratorSpec:
    specs = generator_specs() if specs is None else specs
    if name not in specs:
        raise NotFoundError(f"no generator {name!r} is registered; registered: {', '.join(sorted(specs)) or 'none'}.")
    return specs[name]


@dataclass
class LoadedGenerator:
    """A generator's module (and encoder) in eval mode, fp32, gradients off for its weights."""

    spec: GeneratorSpec
    module: torch.nn.Module
    encoder: torch.nn.Module | None
    output_shape: tuple[int, int, int]  # C × H × W
    device: str = "cpu"

    @classmethod
    def load(cls, spec: GeneratorSpec, device: str = "cpu") -> LoadedGenerator:
        module = _frozen(spec.build(), device)
        encoder = _frozen(spec.encoder(), device) if spec.encoder is not None else None
        with torch.no_grad():
            z = draw_latents(spec.input_spec, 1, torch.Generator().manual_seed(0)).to(device)
            y = torch.zeros(1, dtype=torch.long, device=device) if spec.input_spec.num_classes else None
            shape = tuple(run_generator(module, z, y).shape[1:])
        if len(shape) != 3:
            raise ValueError(f"generator {spec.name} returns images of shape {shape}; a generator must return N×C×H×W")
        return cls(spec, module, encoder, shape, device)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return self.spec.name

    def targets(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Pictures as N×C×H×W in [-1, 1] at the generator's output size (centre-fitted when it differs)."""
        c, h, w = self.output_shape
        arrays = []
        for image in images:
            picture = image.convert("RGB" if c == 3 else "L")
            if picture.size != (w, h):
                picture = ImageOps.fit(picture, (w, h), Image.BICUBIC)
            pixels = np.asarray(picture, dtype=np.float32).reshape(h, w, c)
            arrays.append(pixels.transpose(2, 0, 1) / 127.5 - 1)
        return torch.from_numpy(np.stack(arrays)) if arrays else torch.empty(0, c, h, w)

    @torch.no_grad()
    def sample(self, n: int, seed: int, batch_size: int = 100) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``n`` of its own samples, quantised to 8 bits as a saved PNG would be, and their classes."""
        spec = self.spec.input_spec
        z = draw_latents(spec, n, torch.Generator().manual_seed(seed))
        y = (torch.randint(spec.num_classes, (n,), generator=torch.Generator().manual_seed(seed + 1))
             if spec.num_classes else None)
        parts = []
        for i in range(0, n, batch_size):
            yi = y[i:i + batch_size].to(self.device) if y is not None else None
            parts.append(run_generator(self.module, z[i:i + batch_size].to(self.device), yi).float().cpu())
        images = torch.cat(parts) if parts else torch.empty(0, *self.output_shape)
        return quantise(images), y


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Round images in [-1, 1] to the 256 levels a PNG keeps."""
    return ((images.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def to_pictures(images: torch.Tensor) -> list[Image.Image]:
    """N×C×H×W in [-1, 1] -> PIL images."""
    pixels = ((images.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(p if p.shape[2] == 3 else p[:, :, 0]) for p in pixels]


def _frozen(module: Any, device: str) -> torch.nn.Module:
    return module.float().eval().requires_grad_(False).to(device)
