"""The inversion verifier: does this image belong to one of the lab's generators?"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from vestige.plugin import Finding, ImageInput, InvalidInputError, Picture, VestigeError
from vestige.plugin.training import ArtifactFile, TrainableDetector, TrainedModel, TrainingSet

#: Environment settings (the configuration file has no place for plugin settings).
ENV_GENERATORS = "VESTIGE_INVERSION_GENERATORS"
ENV_MAX_SECONDS = "VESTIGE_INVERSION_MAX_SECONDS"
#: Wall-clock budget per generator per batch; a run that hits it stops early (and says so).
DEFAULT_MAX_SECONDS = 300.0
#: Families whose inversion is too slow on a CPU to run unless named in ``VESTIGE_INVERSION_GENERATORS``.
OPT_IN_FAMILIES = ("diffusion",)


class InversionSettingsError(VestigeError):
    """A ``VESTIGE_INVERSION_*`` setting the user can fix."""

    status = 400


def env_float(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise InversionSettingsError(f"{name}={text!r} is not a number; set it to e.g. {default}") from None


class InversionDetector(TrainableDetector):
    """Reconstructs the image through each candidate generator and tests the loss against its calibration.

    It never tiles (a verification detector has no ``tile_side``): a generator makes whole images, so each
    image is tested only against the candidates whose output size it has, and an image of no candidate's size
    is not tested, with a reason that says so.
    """

    name = "inversion"
    version = "1.0.0"
    kind = "verification"
    description = "Verification by inversion: optimises each registered generator's input to rebuild the image (RONAN)."
    # A GPU when the worker (or `vestige detect`) has one; batched inversion is hundreds of times cheaper there.
    device = "gpu"
    batch_size = 64
    # Seconds of CPU per image per generator: only when asked for (`--detector inversion`).
    runs_by_default = False
    # Measured on a 2-core CPU with the shipped calibrations (issue 24): 44 s per image.
    seconds_per_image = 45.0
    model_hint = "calibrate generators with `vestige inversion calibrate GENERATOR`"

    def __init__(self) -> None:
        self._calibrations: dict[str, Any] | None = None
        self._loaded: dict[str, Any] = {}
        self._skipped: dict[str, str] = {}
        self._device = "cpu"
        self.max_seconds = DEFAULT_MAX_SECONDS

    # -- artifacts --------------------------------------------------------------------

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Callable[[str], None] | None = None, device: str = "cpu") -> TrainedModel:
        raise InvalidInputError("the inversion verifier is calibrated on each generator's own samples, not trained "
                                "on a dataset: use `vestige inversion calibrate GENERATOR`")

    def use_artifact(self, artifact: ArtifactFile) -> None:
        from vestige_inversion.calibration import unpack_set

        self._calibrations = unpack_set(artifact)
        self._artifact = artifact
        self._loaded = {}

    def shipped_artifact(self) -> ArtifactFile | None:
        from vestige_inversion.calibration import shipped_set

        return shipped_set()

    # -- running ----------------------------------------------------------------------

    def load(self, device: str = "cpu") -> None:
        import torch

        from vestige_inversion.calibration import Calibration
        from vestige_inversion.generators import LoadedGenerator, generator_specs

        if os.environ.get("VESTIGE_INVERSION_ALPHA", "").strip():
            raise InversionSettingsError("VESTIGE_INVERSION_ALPHA is no longer read: each calibration sets and stores its "
                                         "own threshold (`vestige inversion calibrate --false-accept`); unset it")
        self.max_seconds = env_float(ENV_MAX_SECONDS, DEFAULT_MAX_SECONDS)
        self._device = "cuda" if device in ("gpu", "cuda") and torch.cuda.is_available() else "cpu"
        specs = generator_specs()
        named = [n.strip() for n in os.environ.get(ENV_GENERATORS, "").split(",") if n.strip()]
        unknown = [n for n in named if n not in specs]
        if unknown:
            raise InversionSettingsError(f"{ENV_GENERATORS} names {', '.join(unknown)}, which no plugin registers; "
                                         f"registered: {', '.join(sorted(specs))}")
        if self._artifact is None and (shipped := self.shipped_artifact()) is not None:
            self.use_artifact(shipped)
        artifact = self.require_artifact()
        calibrations = self._calibrations or {}
        wanted = named or [n for n, s in specs.items() if s.metadata.get("family", "").lower() not in OPT_IN_FAMILIES]
        self._skipped = {}
        loaded = {}
        for name in sorted(wanted):
            cal = calibrations.get(name)
            if cal is None:
                self._skipped[name] = f"not calibrated in model artifact {artifact.sha256[:12]}…: `vestige inversion calibrate {name}`"
            elif not isinstance(cal, Calibration):
                self._skipped[name] = ("calibrated in the first format, without negatives, which is not safe to use: "
                                       f"`vestige inversion calibrate {name}`")
            elif cal.weights_sha256 != specs[name].weights_sha256:
                self._skipped[name] = "calibrated with other weights than the registered ones: recalibrate it"
            else:
                loaded[name] = self._loaded.get(name) or LoadedGenerator.load(specs[name], self._device)
        if not loaded:
            raise InversionSettingsError("no candidate generator has a calibration: "
                                         + "; ".join(f"{k}: {v}" for k, v in self._skipped.items()))
        self._loaded = loaded

    def analyze(self, batch: Sequence[ImageInput]) -> list[Finding]:
        from vestige_inversion.optimise import Settings, invert
        from vestige_inversion.statistics import complexity

        if not self._loaded:
            self.load(self._device)
        calibrations = self._calibrations or {}
        per_image: list[dict[str, dict[str, Any]]] = [{} for _ in batch]
        pictures: dict[str, Any] = {}
        for name, generator in self._loaded.items():
            _, height, width = generator.output_shape
            # Only images of the generator's own output size: a generator makes whole images, so a resized,
            # cropped or tiled copy is nothing it made (docs/tiles.md).
            members = [i for i, item in enumerate(batch) if item.image.size == (width, height)]
            if not members:
                continue
            cal = calibrations[name]
            settings = Settings(**cal.settings)
            targets = generator.targets([batch[i].image for i in members])
            result = invert(generator.module, generator.spec.input_spec, targets, settings, encoder=generator.encoder,
                            max_seconds=self.max_seconds, device=generator.device)
            comps = complexity(targets.numpy())
            pictures[name] = (targets, result.reconstruction, {i: k for k, i in enumerate(members)})
            for k, i in enumerate(members):
                test = cal.threshold.test(float(result.loss[k]), float(comps[k]))
                per_image[i][name] = {
                    "loss": float(result.loss[k]), **test.as_dict(), "statistic": cal.threshold.statistic,
                    "complexity": float(comps[k]), "class": int(result.klass[k]) if result.klass is not None else None,
                    "steps": result.steps, "restarts": settings.restarts, "loss_kind": settings.loss,
                    "seconds": result.seconds / len(members), "budget_hit": result.budget_hit,
                    "calibration_sha256": cal.sha256, "calibration_n": cal.n,
                    "calibration_own_accept": cal.threshold.own_accept,
                    "calibration_false_accept": cal.threshold.false_accept,
                    "weights_sha256": generator.spec.weights_sha256, "generator_version": generator.spec.version,
                }
        return [self._finding(i, per_image[i], pictures, batch[i]) for i in range(len(batch))]

    def _sizes(self) -> str:
        shapes = sorted({(g.output_shape[2], g.output_shape[1]) for g in self._loaded.values()})
        return ", ".join(f"{w}×{h}" for w, h in shapes)

    def _finding(self, i: int, results: dict[str, dict[str, Any]], pictures: dict[str, Any], item: ImageInput) -> Finding:
        if not results:
            width, height = item.image.size
            return self.finding(label="unknown", device=self._device, evidence={
                "candidates": {}, "skipped": dict(self._skipped), "calibration_set_sha256": self.model_sha256,
                "tiling": "never: a generator makes whole images",
                "reason": (f"a {width}×{height} image, and the verifier analyses an image only at its candidate "
                           f"generators' output sizes ({self._sizes()}): a generator makes whole images, so a "
                           f"resized, cropped or tiled copy is nothing it made; not tested")})
        passing = [n for n, r in results.items() if r["belongs"]]
        # Among the generators it may belong to, the one it lies deepest inside the accept region of.
        source = max(passing, key=lambda n: (results[n]["margin"], n)) if passing else None
        shown = source or max(results, key=lambda n: (results[n]["margin"], n))
        targets, recon, position = pictures[shown]
        evidence: dict[str, Any] = {
            "belongs_to": source, "candidates": results, "skipped": dict(self._skipped),
            "calibration_set_sha256": self.model_sha256, "max_seconds": self.max_seconds, "device": self._device,
            "tiling": "never: a generator makes whole images",
        }
        if source:
            r = results[source]
            evidence["summary"] = (f"{source} reconstructs it to loss {r['loss']:.3g}, inside the accept region its "
                                   f"calibration set ({100 * r['calibration_own_accept']:.0f} % of its own samples and "
                                   f"{100 * r['calibration_false_accept']:.0f} % of its negatives fell inside).")
        else:
            evidence["reason"] = (f"none of the {len(results)} candidate generators ({', '.join(sorted(results))}) "
                                  f"reconstructs it as well as its own samples; not belonging to them says nothing "
                                  f"about whether it is real.")
        caption = (f"Left: the image; right: its best reconstruction by {shown} "
                   f"(loss {results[shown]['loss']:.4g}, threshold score {results[shown]['threshold']:.3g}, "
                   f"score {results[shown]['score']:.3g}).")
        return self.finding(
            label="synthetic" if source else "unknown", source=source,
            scores={n: r["p"] for n, r in results.items()}, evidence=evidence, device=self._device,
            pictures=[Picture(f"reconstruction-{shown}", caption,
                              side_by_side(targets[position[i]], recon[position[i]]))],
        )


def side_by_side(image: Any, reconstruction: Any) -> bytes:
    """A PNG of the image and its reconstruction, upscaled (nearest) to at least 128 pixels high."""
    import torch
    from PIL import Image

    from vestige_inversion.generators import to_pictures

    left, right = to_pictures(torch.stack([image, reconstruction]))
    w, h = left.size
    factor = max(1, 128 // h)
    canvas = Image.new("RGB", (2 * w + 1, h), (255, 255, 255))
    canvas.paste(left.convert("RGB"), (0, 0))
    canvas.paste(right.convert("RGB"), (w + 1, 0))
    canvas = canvas.resize((canvas.width * factor, h * factor), Image.NEAREST)
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()

