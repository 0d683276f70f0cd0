"""ManiFPT: exact projection in bounded memory, training on a tiny dataset, findings, artifacts, structure NMI."""

from __future__ import annotations

import hashlib
import json
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vestige.analysis.detect import make_input, run_detector
from vestige.core.errors import InvalidInputError
from vestige.models import domainfit
from vestige.plugin import ShippedManifest
from vestige.plugin.training import REAL, ArtifactFile, Example, TrainingSet
from vestige_manifpt import detector as detector_module
from vestige_manifpt.detector import ManifptDetector, ManifptError, project
from vestige_manifpt.projection import BudgetError, brute_force_nearest, chunk_sizes, nearest, step_bytes
from vestige_manifpt.reference import Reference, from_images, pack, unpack
from vestige_manifpt.structure import nmi_table

SOURCES = (REAL, "checkers", "stripes", "dots")


# -- projection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("budget", [step_bytes(1, 1, 48), 3000, 20_000, 10**9])
@pytest.mark.parametrize("dtype", ["uint8", "float32"])
def test_nearest_is_the_brute_force_nearest_for_any_chunking(budget: int, dtype: str) -> None:
    rng = np.random.default_rng(1)
    if dtype == "uint8":
        refs = rng.integers(0, 256, (157, 48), dtype=np.uint8)
        queries = np.concatenate([rng.integers(0, 256, (30, 48), dtype=np.uint8), refs[[5, 99, 156]]])
    else:
        refs = rng.normal(size=(157, 48)).astype(np.float32)
        queries = np.concatenate([rng.normal(size=(30, 48)).astype(np.float32), refs[[5, 99, 156]]])
    index, distance = nearest(torch.from_numpy(queries), torch.from_numpy(refs), budget_bytes=budget)
    want_index, want_distance = brute_force_nearest(queries, refs)
    assert index.tolist() == want_index.tolist()
    np.testing.assert_allclose(distance, want_distance, rtol=1e-12)
    assert index[-3:].tolist() == [5, 99, 156] and distance[-3:].tolist() == [0.0, 0.0, 0.0]


def test_ties_go_to_the_lower_reference_index() -> None:
    refs = np.zeros((10, 4), dtype=np.float32)
    refs[[3, 7]] = 1.0  # two identical references
    index, _ = nearest(torch.ones((2, 4)), torch.from_numpy(refs), budget_bytes=step_bytes(1, 2, 4))
    assert index.tolist() == [3, 3]


def test_near_ties_that_float32_cannot_separate_are_resolved_exactly() -> None:
    # Large pixel values: float32 ‖a‖² − 2ab + ‖b‖² rounds away a difference of 1 in the distance.
    base = np.full((1, 3072), 200, dtype=np.uint8)
    refs = np.repeat(base, 6, axis=0)
    refs[0, 0], refs[1, 0], refs[2, :2] = 202, 201, 201  # distances 4, 1, 2 to the query
    refs[3:, :] = 0
    index, distance = nearest(torch.from_numpy(base), torch.from_numpy(refs))
    assert (index[0], distance[0]) == (1, 1.0)


@pytest.mark.parametrize(("n", "m", "dim", "budget"), [
    (1000, 50_000, 3072, 256 * 1024**2), (1000, 50_000, 3072, 8 * 1024**2), (1, 10, 3072, 64 * 1024),
    (5000, 50_000, 128, 16 * 1024**2), (7, 3, 10, 10**9),
])
def test_chunks_stay_within_the_memory_budget(n: int, m: int, dim: int, budget: int) -> None:
    chunks = chunk_sizes(n, m, dim, budget)
    assert 1 <= chunks.queries <= n and 1 <= chunks.references <= m
    assert chunks.step_bytes == step_bytes(chunks.queries, chunks.references, dim) <= budget


def test_a_budget_too_small_for_one_pair_is_refused() -> None:
    with pytest.raises(BudgetError, match="at least"):
        chunk_sizes(10, 10, 3072, 1000)


def test_projection_never_allocates_a_full_distance_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    """The largest distance block the search builds is the chunk the budget allows, not queries × references."""
    biggest = []
    real_addmm = torch.addmm

    def spy(*args, **kwargs):
        out = real_addmm(*args, **kwargs)
        biggest.append(out.numel())
        return out

    monkeypatch.setattr(torch, "addmm", spy)
    rng = np.random.default_rng(0)
    refs = torch.from_numpy(rng.integers(0, 256, (2000, 3072), dtype=np.uint8))
    budget = 2 * 1024**2
    nearest(torch.from_numpy(rng.integers(0, 256, (64, 3072), dtype=np.uint8)), refs, budget_bytes=budget)
    chunks = chunk_sizes(64, 2000, 3072, budget)
    assert max(biggest) == chunks.queries * chunks.references < 64 * 2000


# -- a tiny dataset -----------------------------------------------------------------------------


def _texture(rng: np.random.Generator) -> np.ndarray:
    """A smooth random picture: low-frequency noise, upsampled."""
    small = rng.uniform(40, 215, (4, 4, 3))
    return np.asarray(Image.fromarray(small.astype(np.uint8), "RGB").resize((32, 32), Image.BICUBIC), dtype=np.float64)


def _pattern(source: str) -> np.ndarray:
    y, x = np.mgrid[0:32, 0:32]
    if source == "checkers":
        p = ((x + y) % 2) * 2 - 1
    elif source == "stripes":
        p = (y % 4 < 2) * 2 - 1
    elif source == "dots":
        p = ((x % 4 == 0) & (y % 4 == 0)) * 4 - 0.25
    else:
        return np.zeros((32, 32, 1))
    return 10.0 * p[..., None]


def _image(source: str, rng: np.random.Generator, name: str) -> Example:
    pixels = np.clip(_texture(rng) + _pattern(source), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "RGB").save(buf, "PNG")
    return Example(image=make_input(buf.getvalue(), name=name), source=source)


def _examples(per_source: int, seed: int, split: str) -> list[Example]:
    rng = np.random.default_rng(seed)
    return [_image(s, rng, f"{split}/{s}/{i}.png") for i in range(per_source) for s in SOURCES]


@pytest.fixture(scope="module")
def tiny() -> TrainingSet:
    return TrainingSet(train=_examples(48, 0, "train"), validation=_examples(12, 1, "val"), sources=SOURCES,
                       dataset_sha256="0" * 64, name="tiny")


OPTIONS = {"space": "rgb", "reference_size": 24, "epochs": 6, "batch_size": 32, "blocks": 1}


@pytest.fixture(scope="module")
def trained(tiny: TrainingSet):
    torch.set_num_threads(1)
    return domainfit.train(ManifptDetector(), tiny, seed=0, options=OPTIONS)


@pytest.fixture
def detector(trained) -> ManifptDetector:
    det = ManifptDetector()
    det.use_artifact(ArtifactFile.from_bytes(trained.data))
    det.load("cpu")
    return det


def test_training_on_a_tiny_dataset_attributes_well_above_chance(detector: ManifptDetector) -> None:
    test = _examples(10, 2, "test")
    findings = detector.analyze([e.image for e in test])
    attributed = [f.evidence["attributed"] for f in findings]
    accuracy = np.mean([a == e.source for a, e in zip(attributed, test)])
    assert accuracy >= 0.75  # chance is 0.25
    for f, e in zip(findings, test):
        if f.label == "synthetic" and f.source is None:  # synthetic, matching no generator at the threshold
            assert f.evidence["domain"]["reason"].startswith("synthetic by the evidence standard")
        elif f.label != "unknown":
            assert f.label == ("real" if f.evidence["attributed"] == REAL else "synthetic")
            assert f.source == (None if f.evidence["attributed"] == REAL else f.evidence["attributed"])
        assert abs(sum(f.scores.values()) - 1) < 1e-9 and set(f.scores) == set(SOURCES)


def test_reference_images_are_kept_out_of_the_real_examples(tiny: TrainingSet, trained) -> None:
    artifact = ArtifactFile.from_bytes(trained.data)
    reference = Reference.from_tensors(artifact.tensors())
    real = {e.image.sha256 for e in tiny.train if e.source == REAL}
    assert len(reference) == 24 and reference.file_digests() <= real
    assert trained.metrics["real_examples"] == len(real) - 24
    # the real examples' artifacts are not zero: none of them is its own nearest reference
    assert trained.metrics["train_real_artifact_mean_abs"] > 0.01


def test_a_reference_artifact_leaves_its_images_out_of_the_real_examples(tiny: TrainingSet, tmp_path: Path) -> None:
    real = [e for e in tiny.train if e.source == REAL]
    extra = _examples(5, 9, "lab")  # images the dataset does not hold
    ref = from_images([e.image for e in real[:10]] + [e.image for e in extra])
    path = tmp_path / "reference.safetensors"
    path.write_bytes(pack(ref, version="0.1.0", info={"folder": "lab"}))
    model = ManifptDetector().fit(tiny, seed=0, options={**OPTIONS, "reference": str(path), "epochs": 1})
    assert model.metrics["reference_images"] == 30
    assert model.metrics["real_examples"] == len(real) - 10
    info = ArtifactFile.from_bytes(model.data).info["reference"]
    assert info["from"] == "artifact" and info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_findings_show_the_artifact_and_the_nearest_reference(detector: ManifptDetector) -> None:
    state = detector.model()
    reference = state["reference"]
    # a reference image itself: its nearest reference is itself, at distance 0
    buf = io.BytesIO()
    Image.fromarray(reference.pixels[3], "RGB").save(buf, "PNG")
    finding = detector.analyze([make_input(buf.getvalue(), name="ref.png")])[0]
    nearest_ref = finding.evidence["nearest_reference"]
    assert nearest_ref["index"] == 3 and nearest_ref["squared_distance"] == 0.0
    assert nearest_ref["file_sha256"] == reference.file_sha256(3)
    names = [p.name for p in finding.pictures]
    assert names == ["artifact.png", "nearest-reference.png"]
    from vestige.plugin.pixels import PIXELS_MEDIA_TYPE, shown_form

    shown = []
    for picture in finding.pictures:  # deferred: raw pixels stored, a PNG when shown
        assert picture.media_type == PIXELS_MEDIA_TYPE
        shown.append(shown_form(picture.data, picture.media_type)[0])
        with Image.open(io.BytesIO(shown[-1])) as im:
            assert im.format == "PNG" and im.size == (128, 128)
    with Image.open(io.BytesIO(shown[1])) as im:
        assert np.array_equal(np.asarray(im.convert("RGB"))[::4, ::4], reference.pixels[3])


def test_findings_do_not_depend_on_the_batch(detector: ManifptDetector) -> None:
    images = [e.image for e in _examples(3, 5, "b")]
    alone = [detector.analyze([im])[0].to_dict() for im in images]
    together = [f.to_dict() for f in detector.analyze(images)]
    assert alone == together


def test_network_numbers_are_bit_identical_at_any_position_and_batch(detector: ManifptDetector) -> None:
    """Chunks of a constant size: an image alone, early in a batch or late in a reversed one (past the first
    chunk) gets exactly the same embedding and probabilities, not merely the same rounded finding."""
    from vestige_manifpt.detector import NETWORK_CHUNK

    images = [e.image for e in _examples(9, 5, "chunks")]
    assert len(images) > NETWORK_CHUNK
    forward = detector._attribute(images)
    backward = detector._attribute(images[::-1])
    for i, image in enumerate(images):
        alone = detector._attribute([image])
        j = len(images) - 1 - i
        for key in ("embeddings", "probabilities"):
            assert np.array_equal(alone[key][0], forward[key][i]) and np.array_equal(alone[key][0], backward[key][j])


def test_training_is_deterministic(tiny: TrainingSet, trained) -> None:
    again = domainfit.train(ManifptDetector(), tiny, seed=0, options=OPTIONS)  # the domain fit is deterministic too
    assert again.sha256 == trained.sha256


@pytest.mark.parametrize("space", ["freq"])
def test_other_spaces_train_and_attribute(tiny: TrainingSet, space: str) -> None:
    model = ManifptDetector().fit(tiny, seed=0, options={**OPTIONS, "space": space, "epochs": 10})
    det = ManifptDetector()
    det.use_artifact(ArtifactFile.from_bytes(model.data))
    test = _examples(5, 3, "test")
    findings = det.analyze([e.image for e in test])
    assert np.mean([f.evidence["attributed"] == e.source for f, e in zip(findings, test)]) > 0.5
    assert findings[0].evidence["space"] == space


def test_a_threshold_above_every_probability_makes_unknown(detector: ManifptDetector) -> None:
    detector.model()["calibration"] = {**detector.model()["calibration"], "unknown_threshold": 1.01}
    finding = detector.analyze([_examples(1, 4, "u")[0].image])[0]
    assert finding.label == "unknown" and finding.source is None


def test_a_reference_artifact_is_not_a_model(trained) -> None:
    ref = Reference.from_tensors(ArtifactFile.from_bytes(trained.data).tensors())
    artifact = ArtifactFile.from_bytes(pack(ref, version="0.1.0", info={}))
    assert len(unpack(artifact)) == len(ref)
    with pytest.raises(ManifptError, match="reference, not a trained model"):
        ManifptDetector().use_artifact(artifact)


def test_options_are_checked(tiny: TrainingSet) -> None:
    with pytest.raises(ManifptError, match="space must be one of"):
        ManifptDetector().fit(tiny, options={"space": "ssl"})
    with pytest.raises(ManifptError, match="unknown option"):
        ManifptDetector().fit(tiny, options={"bogus": 1})


def test_a_shipped_artifact_is_verified_and_a_modified_copy_refused(trained, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    real_dir = detector_module.WEIGHTS_DIR
    if (real_dir / "manifest.json").is_file():
        shipped = ManifptDetector().shipped_artifact()
        assert shipped is not None and shipped.origin == "shipped" and shipped.info["kind"] == "attributor"
        shutil.copytree(real_dir, tmp_path / "weights")
    else:  # before a model is shipped: the same mechanism on the tiny model
        manifest = ShippedManifest(tmp_path / "weights")
        manifest.add("manifpt", trained.data, make_default=True)
        manifest.write()
    monkeypatch.setattr(detector_module, "WEIGHTS_DIR", tmp_path / "weights")
    assert ManifptDetector().shipped_artifact() is not None
    target = next((tmp_path / "weights").glob("manifpt-*.safetensors"))
    data = bytearray(target.read_bytes())
    data[-1] ^= 1
    target.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="modified or damaged"):
        ManifptDetector().shipped_artifact()


def test_project_returns_the_difference_from_the_nearest_reference(trained) -> None:
    reference = Reference.from_tensors(ArtifactFile.from_bytes(trained.data).tensors())
    pixels = np.clip(reference.pixels[:4].astype(int) + 3, 0, 255).astype(np.uint8)
    artifacts, index, _ = project(pixels, reference, "rgb", budget_bytes=step_bytes(1, 1, 3072))
    expected = (pixels.astype(np.float32) - reference.pixels[index].astype(np.float32)).transpose(0, 3, 1, 2) / 255
    np.testing.assert_allclose(artifacts.numpy(), expected, atol=1e-7)


# -- structure ----------------------------------------------------------------------------------


def test_structure_nmi_finds_the_design_choice_that_explains_the_fingerprints() -> None:
    from vestige.models.attribution_metrics import normalized_mutual_information

    models = ["a1", "a2", "b1", "b2"]
    metadata = {"a1": {"upsampling": "transposed", "loss": "hinge"}, "a2": {"upsampling": "transposed", "loss": "wgan"},
                "b1": {"upsampling": "nearest", "loss": "hinge"}, "b2": {"upsampling": "nearest", "loss": "wgan"}}
    rng = np.random.default_rng(0)
    centres = {"transposed": np.array([1.0, 0.0, 0.0]), "nearest": np.array([0.0, 1.0, 0.0])}
    image_models = [m for m in models for _ in range(20)]
    embeddings = np.stack([centres[metadata[m]["upsampling"]] + rng.normal(0, 0.05, 3) for m in image_models])
    prints = np.stack([embeddings[np.array(image_models) == m].mean(0) for m in models])
    rows = {r["attribute"]: r for r in nmi_table(models, prints, image_models, embeddings, metadata,
                                                  ["upsampling", "loss"], normalized_mutual_information)}
    assert rows["upsampling"]["nmi_models"] == pytest.approx(1.0) and rows["upsampling"]["nmi_images"] == pytest.approx(1.0)
    assert rows["loss"]["nmi_models"] == pytest.approx(0.0) and rows["loss"]["nmi_images"] < 0.1


# -- command line -------------------------------------------------------------------------------


def test_a_lab_reference_is_built_from_a_folder_and_registered(vestige, tmp_path: Path) -> None:
    folder = tmp_path / "lab-real"
    (folder / "sub").mkdir(parents=True)
    rng = np.random.default_rng(7)
    for i in range(6):
        Image.fromarray(_texture(rng).astype(np.uint8), "RGB").save(folder / ("sub" if i % 2 else ".") / f"{i}.png")
    assert vestige("init").exit_code == 0
    result = vestige("manifpt", "reference", "--images", folder, "--out", tmp_path / "ref.safetensors")
    assert result.exit_code == 0, result.stderr
    sha = hashlib.sha256((tmp_path / "ref.safetensors").read_bytes()).hexdigest()
    assert f"sha256 {sha}" in result.stdout
    listed = vestige("models", "list", "--detector", "manifpt", "--json")
    rows = [r for r in json.loads(listed.stdout) if r["sha256"] == sha]
    assert rows and rows[0]["origin"] == "trained" and rows[0]["info"]["kind"] == "reference"
    assert len(unpack(ArtifactFile.from_bytes((tmp_path / "ref.safetensors").read_bytes()))) == 6
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = vestige("manifpt", "reference", "--images", empty, "--no-register", "--out", tmp_path / "x")
    assert refused.exit_code != 0 and "holds no images" in refused.stderr


def test_augmentation_adds_corrupted_copies_of_training_images(tiny: TrainingSet) -> None:
    def blur(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        from PIL import ImageFilter

        return image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.0))))

    with pytest.raises(ManifptError, match="needs a training set with augmentation"):
        ManifptDetector().fit(tiny, options={**OPTIONS, "augment": 0.5, "epochs": 1})
    augmented = TrainingSet(train=tiny.train, validation=tiny.validation, sources=tiny.sources, name="tiny", augment=blur)
    model = ManifptDetector().fit(augmented, seed=0, options={**OPTIONS, "augment": 0.5, "epochs": 1})
    plain = len(tiny.train) - 24
    assert plain * 1.3 < model.metrics["train_artifacts"] < plain * 1.7


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory):
    """The tiny sources written as a dataset: test images of class ``a`` (seen) and ``b`` (unseen)."""
    from vestige.models.datasets import DatasetWriter

    out = tmp_path_factory.mktemp("data") / "tiny"
    with DatasetWriter(out, name="tiny", sources=list(SOURCES), classes=["a", "b"], seen_classes=["a"],
                       unseen_classes=["b"]) as writer:
        for split, n, seed in (("train", 4, 10), ("val", 2, 11), ("test", 8, 12)):
            for i, example in enumerate(_examples(n, seed, split)):
                writer.add(example.image.image, source=example.source, klass="ab"[i // len(SOURCES) % 2], split=split)
        return writer.finish()


def test_closed_set_evaluation_counts_the_most_probable_source(detector: ManifptDetector, tiny_dataset) -> None:
    from vestige_manifpt.evaluation import closed_set_source, evaluate

    assert closed_set_source({"real": 0.2, "dots": 0.5, "other": 0.9}, SOURCES) == "dots"
    assert closed_set_source({"real": 0.5, "dots": 0.5}, SOURCES) == "real"
    result = evaluate({"manifpt": detector}, tiny_dataset)
    row = result["detectors"]["manifpt"]
    assert result["images"] == 32 and row["seen"]["images"] == row["unseen"]["images"] == 16
    assert row["all"]["closed_set_accuracy"] >= 0.75
    assert row["all"]["open_set_accuracy"] <= row["all"]["closed_set_accuracy"]


def test_structure_analysis_of_a_dataset_writes_a_table_and_a_picture(detector: ManifptDetector, tiny_dataset) -> None:
    from vestige_manifpt.structure import analyse, markdown

    metadata = {"checkers": {"upsampling": "transposed", "family": "GAN", "description": "x"},
                "stripes": {"upsampling": "nearest", "family": "GAN", "description": "y"},
                "dots": {"upsampling": "nearest", "family": "VAE", "description": "z"}}
    result, picture = analyse(detector, tiny_dataset, metadata, per_source=8)
    assert result["models"] == ["checkers", "stripes", "dots"]
    assert {r["attribute"] for r in result["table"]} == {"upsampling", "family"}
    for row in result["table"]:
        for part in (row, row["spectrum"]):
            assert 0 <= part["nmi_images"] <= 1 and 0 <= part["nmi_models"] <= 1
    assert markdown(result).count("\n") == 3
    with Image.open(io.BytesIO(picture)) as im:
        assert im.format == "PNG" and im.width >= 3 * 128


# -- the shipped model --------------------------------------------------------------------------


@pytest.mark.parametrize("generator", ["nnup-hinge", "stylegan-mini"])
def test_the_shipped_model_attributes_zoo_samples_through_vestige_detect(vestige, tmp_path: Path, generator: str) -> None:
    """With no workspace (the shipped model): samples the zoo draws now (seed 4242, not the dataset's) are attributed."""
    assert ManifptDetector().shipped_artifact() is not None, "plugins/vestige_manifpt/weights ships no model"
    assert vestige("zoo", "sample", generator, "--n", "10", "--seed", "4242", "--out", tmp_path / "s").exit_code == 0
    files = sorted((tmp_path / "s").glob("*.png"))
    result = vestige("detect", *files, "--detector", "manifpt", "--json")
    assert result.exit_code == 0, result.stderr
    findings = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(findings) == 10 and all(f["device"] in ("cpu", "cuda") and f["error"] is None for f in findings)
    assert sum(f["evidence"]["attributed"] == generator for f in findings) >= 8
    for finding in findings:
        assert [p["name"] for p in finding["pictures"]] == ["artifact.png", "nearest-reference.png"]
        assert all(p["media_type"] == "application/vnd.vestige.pixels" and p["size"] > 100 for p in finding["pictures"])


def test_a_dataset_of_generators_only_trains_with_a_reference_from_elsewhere(tmp_path: Path) -> None:
    """Issue 18: a lab attributing among generators has no real images; the manifold comes from elsewhere."""
    generators = SOURCES[1:]
    pick = lambda xs: [e for e in xs if e.source != REAL]  # noqa: E731
    data = TrainingSet(train=pick(_examples(12, 21, "train")), validation=pick(_examples(4, 22, "val")),
                       sources=generators, name="generators only", dataset_sha256="0" * 64)
    with pytest.raises(ManifptError, match="give --reference"):
        ManifptDetector().fit(data, seed=0, options=OPTIONS)
    real = [e for e in _examples(20, 23, "lab") if e.source == REAL]
    path = tmp_path / "reference.safetensors"
    path.write_bytes(pack(from_images([e.image for e in real]), version="0.1.0", info={"folder": "lab"}))
    model = domainfit.train(ManifptDetector(), data, seed=0, options={**OPTIONS, "reference": str(path), "epochs": 8})
    artifact = ArtifactFile.from_bytes(model.data)
    assert artifact.info["sources"] == list(generators) and model.metrics["real_examples"] == 0
    assert artifact.domain["accusation"] is None
    detector = ManifptDetector()
    detector.use_artifact(artifact)
    test = pick(_examples(6, 24, "test"))
    findings = run_detector(detector, [e.image for e in test])
    assert not any(f.label == "real" for f in findings)
    assert np.mean([f.evidence["attributed"] == e.source for f, e in zip(findings, test)]) >= 0.6
