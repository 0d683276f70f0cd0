"""The classic baselines (kNN, Eigenface, PRNU, DCT) learn, calibrate, travel as artifacts and explain.

The synthetic problem: 32×32 smooth random colour textures with a little
sensor-like noise. ``real`` is just that; each of three "generators" stamps
its own fixed trace on every image it makes (a fixed noise pattern, a pixel
checkerboard as transposed convolutions leave, a fixed chroma pattern) and
shifts the colour balance a little, as real generators' samples differ in
colour statistics. The traces are what PRNU and DCT should find; the colour
balance is nearly all kNN on pixels can see. 40 training, 10 validation and
20 test images per source; chance is 25 %.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pytest
from PIL import Image

from vestige.analysis.detect import make_input, run_detector
from vestige.plugin import ImageInput
from vestige.plugin.training import ArtifactFile, Example, NoModelError, TrainableDetector, TrainedModel, TrainingSet
from vestige_baselines import (
    CnnDetector,
    DctDetector,
    EigenfaceDetector,
    KnnDetector,
    PrnuDetector,
    fingerprint_grid,
    vestige_detectors,
)
from vestige_baselines.detector import ArtifactMismatchError, BaselineDetector, TrainingDataError

SIZE = 32
SOURCES = ("real", "gen-noise", "gen-checker", "gen-colour")
TINTS = {"real": (0, 0, 0), "gen-noise": (20, 0, -10), "gen-checker": (-10, 6, 20), "gen-colour": (0, 20, 0)}
DETECTORS = {"knn": KnnDetector, "eigenface": EigenfaceDetector, "prnu": PrnuDetector, "dct": DctDetector,
             "cnn": CnnDetector}
#: Held-out accuracy each must reach (chance 0.25). kNN only sees colour balance; the others see the traces.
MIN_ACCURACY = {"knn": 0.6, "eigenface": 0.85, "prnu": 0.95, "dct": 0.9, "cnn": 0.9}
#: Options for the fixtures' fits: the CNN's 12 default epochs are 36 steps on 160 images, too few to learn.
FIT_OPTIONS = {"cnn": {"epochs": 40, "augment": 0.2}}


def _traces() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1234)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    checker = np.where((yy + xx) % 2 == 0, 3.0, -3.0)[:, :, None].repeat(3, axis=2)
    chroma = rng.normal(0, 4, (SIZE, SIZE))[:, :, None] * np.array([1.0, -1.0, 0.5])
    return {"real": np.zeros((SIZE, SIZE, 3)), "gen-noise": rng.normal(0, 4, (SIZE, SIZE, 3)),
            "gen-checker": checker, "gen-colour": chroma}


def _smooth(rng: np.random.Generator, cells: int) -> np.ndarray:
    low = Image.fromarray(rng.integers(0, 256, (cells, cells, 3), dtype=np.uint8), "RGB")
    return np.asarray(low.resize((SIZE, SIZE), Image.Resampling.BICUBIC), dtype=np.float64)


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(out, format="PNG")
    return out.getvalue()


def _pixels(source: str, rng: np.random.Generator, traces: dict[str, np.ndarray]) -> np.ndarray:
    texture = 0.7 * _smooth(rng, 4) + 0.3 * _smooth(rng, 8)
    image = 0.5 * texture + 64 + np.array(TINTS[source]) + rng.normal(0, 2, (SIZE, SIZE, 3)) + traces[source]
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


@dataclass
class Problem:
    data: TrainingSet
    test: list[Example]


@pytest.fixture(scope="module")
def problem() -> Problem:
    rng = np.random.default_rng(0)
    traces = _traces()
    splits: dict[str, list[Example]] = {"train": [], "validation": [], "test": []}
    for source in SOURCES:
        for split, count in (("train", 40), ("validation", 10), ("test", 20)):
            for i in range(count):
                data = _png(_pixels(source, rng, traces))
                splits[split].append(Example(make_input(data, name=f"{source}-{split}-{i}.png"), source))
    return Problem(TrainingSet(splits["train"], splits["validation"], SOURCES, name="synthetic"), splits["test"])


@pytest.fixture(scope="module")
def trained(problem: Problem) -> dict[str, TrainedModel]:
    """Each baseline fitted once with seed 0 (progress messages collected as a check)."""
    models = {}
    for name, cls in DETECTORS.items():
        messages: list[str] = []
        models[name] = cls().fit(problem.data, seed=0, options=FIT_OPTIONS.get(name), progress=messages.append)
        assert messages, f"{name} said nothing during training"
    return models


def _ready(name: str, model: TrainedModel) -> BaselineDetector:
    detector = DETECTORS[name]()
    detector.use_artifact(ArtifactFile.from_bytes(model.data))
    return detector


def _image(width: int, height: int, seed: int = 7) -> ImageInput:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return make_input(_png(pixels), name=f"odd-{width}x{height}.png")


def test_the_plugin_offers_five_trainable_cpu_attribution_detectors():
    detectors = vestige_detectors()
    assert sorted(d.name for d in detectors) == ["cnn", "dct", "eigenface", "knn", "prnu"]
    for detector in detectors:
        assert isinstance(detector, TrainableDetector)
        assert (detector.kind, detector.device) == ("attribution", "cpu")
        assert detector.model_sha256 is None


@pytest.mark.parametrize("name", DETECTORS)
def test_each_baseline_learns_the_synthetic_problem(problem: Problem, trained: dict[str, TrainedModel], name: str):
    detector = _ready(name, trained[name])
    findings = detector.analyze([e.image for e in problem.test])
    predicted = [f.source or "real" for f in findings]
    accuracy = np.mean([p == e.source for p, e in zip(predicted, problem.test, strict=True)])
    assert accuracy >= MIN_ACCURACY[name], f"{name}: {accuracy:.3f} on held-out images"
    assert trained[name].metrics["accuracy"] >= MIN_ACCURACY[name] - 0.1
    for finding in findings:
        assert finding.label == ("real" if finding.source is None else "synthetic")
        assert list(finding.scores) == list(SOURCES)
        assert sum(finding.scores.values()) == pytest.approx(1.0)
        assert finding.confidence == max(finding.scores.values())
        assert finding.model_sha256 == trained[name].sha256
        assert finding.evidence["scores_are"] and finding.evidence["input"]["preparation"] == "as is"


@pytest.mark.parametrize(("name", "fitted"), [("knn", "temperature"), ("eigenface", "temperature"),
                                              ("prnu", "offsets"), ("dct", None)])
def test_training_records_validation_accuracy_and_calibration(trained: dict[str, TrainedModel], name: str,
                                                              fitted: str | None):
    model = trained[name]
    assert model.metrics["validation_images"] == 40
    assert set(model.metrics["accuracy_per_source"]) == set(SOURCES)
    if fitted is None:
        assert model.calibration == {"method": "none"}
    else:
        assert model.calibration["temperature"] > 0
    if fitted == "offsets":
        assert set(model.calibration["offsets"]) == set(SOURCES) and model.calibration["offsets"]["real"] == 0.0
    info = ArtifactFile.from_bytes(model.data).info
    assert info["calibration"] == dict(model.calibration)
    assert info["validation"]["accuracy"] == model.metrics["accuracy"]


def test_prnu_without_offsets_is_the_plain_correlation_rule_and_it_misses_real(trained: dict[str, TrainedModel]):
    # Real images share no fingerprint, so the paper's argmax rule scatters them; the fitted offsets fix that.
    metrics = trained["prnu"].metrics
    assert metrics["accuracy_highest_correlation"] < metrics["accuracy"]


@pytest.mark.parametrize("name", DETECTORS)
def test_the_artifact_is_arrays_and_a_header(trained: dict[str, TrainedModel], name: str):
    artifact = ArtifactFile.from_bytes(trained[name].data)
    assert (artifact.detector, artifact.version) == (name, DETECTORS[name].version)
    assert artifact.info["sources"] == list(SOURCES)
    assert artifact.info["input_size"] == SIZE
    assert artifact.info["train_images"] == {s: 40 for s in SOURCES}
    assert all(isinstance(a, np.ndarray) for a in artifact.tensors().values())
    detector = _ready(name, trained[name])
    assert detector.labels == SOURCES and detector.model_sha256 == artifact.sha256


@pytest.mark.parametrize("name", DETECTORS)
def test_training_is_deterministic_for_a_seed(problem: Problem, trained: dict[str, TrainedModel], name: str):
    assert DETECTORS[name]().fit(problem.data, seed=0, options=FIT_OPTIONS.get(name)).data == trained[name].data


@pytest.mark.parametrize("name", DETECTORS)
def test_same_artifact_and_image_give_the_same_finding_in_any_batch(problem: Problem,
                                                                    trained: dict[str, TrainedModel], name: str):
    images = [e.image for e in problem.test[::7]]
    together = _ready(name, trained[name]).analyze(images)
    other = _ready(name, trained[name])
    alone = [other.analyze([image])[0] for image in reversed(images)][::-1]
    assert [f.to_dict() for f in together] == [f.to_dict() for f in alone]
    # Bit for bit, not just to the six decimals of the canonical form.
    assert [(f.scores, f.confidence, f.evidence) for f in together] == [(f.scores, f.confidence, f.evidence) for f in alone]


@pytest.mark.parametrize("name", DETECTORS)
def test_without_a_model_the_detector_says_how_to_get_one(problem: Problem, name: str):
    detector = DETECTORS[name]()
    with pytest.raises(NoModelError):
        detector.analyze([problem.test[0].image])
    (finding,) = run_detector(detector, [problem.test[0].image])
    assert finding.label == "unknown" and f"vestige train {name}" in finding.error


def test_an_artifact_of_another_detector_is_refused(trained: dict[str, TrainedModel]):
    with pytest.raises(ArtifactMismatchError, match="model of prnu"):
        KnnDetector().use_artifact(ArtifactFile.from_bytes(trained["prnu"].data))


@pytest.mark.parametrize(("name", "larger", "smaller"), [
    ("knn", "centre square resized", "centre square upsampled"),
    ("eigenface", "centre square resized", "centre square upsampled"),
    ("prnu", "centre crop", "centre square upsampled"),
    ("dct", "centre crop", "centre square upsampled"),
    ("cnn", "centre square resized", "centre square upsampled"),
])
def test_images_of_any_size_are_brought_to_the_working_size(trained: dict[str, TrainedModel], name: str,
                                                            larger: str, smaller: str):
    detector = _ready(name, trained[name])
    findings = detector.analyze([_image(45, 37), _image(20, 23), _image(32, 64)])
    assert [f.evidence["input"]["preparation"] for f in findings] == [larger, smaller, larger]
    assert findings[0].evidence["input"] == {"width": 45, "height": 37, "working_size": SIZE, "preparation": larger}
    assert all(f.error is None and f.source in (None, *SOURCES[1:]) for f in findings)


@pytest.mark.parametrize("name", ["prnu", "dct"])
def test_crop_detectors_see_exactly_the_centre_window(problem: Problem, trained: dict[str, TrainedModel], name: str):
    # A test image pasted in the middle of a larger noisy frame scores exactly as the image alone.
    example = problem.test[25]
    frame = np.random.default_rng(3).integers(0, 256, (50, 47, 3), dtype=np.uint8)
    top, left = (50 - SIZE) // 2, (47 - SIZE) // 2
    frame[top : top + SIZE, left : left + SIZE] = np.asarray(example.image.image)
    detector = _ready(name, trained[name])
    alone, framed = detector.analyze([example.image, make_input(_png(frame), name="framed.png")])
    assert framed.scores == alone.scores


def test_prnu_findings_show_the_residual_and_the_attributed_fingerprint(problem: Problem,
                                                                         trained: dict[str, TrainedModel]):
    detector = _ready("prnu", trained["prnu"])
    findings = detector.analyze([e.image for e in problem.test[::20]])
    for finding in findings:
        source = finding.source or "real"
        assert [p.name for p in finding.pictures] == ["noise residual", f"fingerprint of {source}"]
        for picture in finding.pictures:
            assert picture.media_type == "image/png"
            with Image.open(io.BytesIO(picture.data)) as png:
                assert (png.format, png.size) == ("PNG", (4 * SIZE, 4 * SIZE))
                png.verify()
    # The fixed checkerboard is in the generator's fingerprint for anyone to see: alternate pixels, opposite signs.
    with Image.open(io.BytesIO(findings[2].pictures[1].data)) as png:
        grey = np.asarray(png.convert("L"), dtype=np.float64)[::4, ::4]
    assert findings[2].source == "gen-checker"
    assert np.mean(np.sign(grey[:, :-1] - 127.5) != np.sign(grey[:, 1:] - 127.5)) > 0.9


def test_the_fingerprint_grid_names_every_source(trained: dict[str, TrainedModel]):
    data = fingerprint_grid(ArtifactFile.from_bytes(trained["prnu"].data), columns=2)
    with Image.open(io.BytesIO(data)) as png:
        assert png.format == "PNG" and png.width > 2 * 4 * SIZE and png.height > 2 * 4 * SIZE
    with pytest.raises(ArtifactMismatchError):
        fingerprint_grid(ArtifactFile.from_bytes(trained["dct"].data))


@pytest.mark.parametrize(("name", "options", "check"), [
    ("knn", {"k": 3, "per_source": 20}, lambda a: a.tensors()["pixels"].shape == (80, SIZE, SIZE, 3)),
    ("eigenface", {"n_components": 500, "no_whiten": True}, lambda a: a.info["hyperparameters"]["n_components"] == 159),
    ("prnu", {"estimator": "mle", "wavelet": "sym4", "levels": 1}, lambda a: a.info["hyperparameters"]["levels"] == 1),
    ("dct", {"channels": "grey", "cost": 0.1}, lambda a: a.tensors()["feature_mean"].shape == (SIZE * SIZE,)),
])
def test_options_change_the_model_and_it_still_learns(problem: Problem, name: str, options: dict, check):
    model = DETECTORS[name]().fit(problem.data, seed=1, options=options)
    artifact = ArtifactFile.from_bytes(model.data)
    assert check(artifact)
    assert model.metrics["accuracy"] >= MIN_ACCURACY[name] - 0.15


@pytest.mark.parametrize(("options", "message"), [
    ({"neighbours": 3}, "unknown option"),
    ({"k": 0}, "at least 1"),
])
def test_bad_options_are_refused_with_a_sentence(problem: Problem, options: dict, message: str):
    with pytest.raises(TrainingDataError, match=message):
        KnnDetector().fit(problem.data, options=options)


def test_every_source_needs_training_images(problem: Problem):
    data = TrainingSet([e for e in problem.data.train if e.source != "gen-colour"], [], SOURCES, name="partial")
    with pytest.raises(TrainingDataError, match="no training images of gen-colour"):
        DctDetector().fit(data)
