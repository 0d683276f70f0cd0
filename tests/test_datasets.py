"""Benchmark datasets: `vestige bench build folders|zoo32`, the manifest, verification, the format-cue check."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import benchkit
from conftest import SHARED
from vestige.analysis.detect import make_input, run_detector
from vestige.core.errors import ConflictError, InvalidInputError
from vestige.core.plugins import get_plugin_manager, register_plugin
from vestige.models import domainfit
from vestige.models.datasets import CONDITIONS, FORMAT, Dataset, open_dataset
from vestige.plugin.training import ArtifactFile, Example, TrainingSet
from vestige_bench.dataset_builders import SEEN_CLASSES, UNSEEN_CLASSES, Counts, build_folders
from vestige_bench.harness import predicted_source, run_benchmark

PER_SOURCE = 30


@pytest.fixture(scope="module")
def pm():
    manager = get_plugin_manager()
    register_plugin(manager, benchkit, name="benchkit")
    return manager


@pytest.fixture(scope="module")
def source_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return benchkit.write_source_folder(tmp_path_factory.mktemp("lab") / "reference", PER_SOURCE)


@pytest.fixture(scope="module")
def dataset(source_folder: Path, pm, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return build_folders(source_folder, tmp_path_factory.mktemp("built") / "ds", pm=pm, command="test build")


def test_folders_dataset_has_splits_per_source_and_three_perturbed_copies_of_each_test_image(dataset: Dataset) -> None:
    manifest = json.loads((dataset.path / "manifest.json").read_bytes())
    assert manifest["format"] == FORMAT and manifest["encoding"] == "png" and manifest["command"] == "test build"
    assert manifest["sources"] == ["real", "gen-a", "gen-b"]  # real first
    assert manifest["classes"] == manifest["seen_classes"] == manifest["unseen_classes"] == []
    assert manifest["perturbations"]["severity"] == 3
    assert set(manifest["perturbations"]["seen"]).isdisjoint(manifest["perturbations"]["unseen"])
    for source in benchkit.SOURCES:
        counts = {split: len([r for r in dataset.records(split=split, condition="clean") if r.source == source])
                  for split in ("train", "val", "test")}
        assert counts == {"train": 21, "val": 3, "test": 6}  # 10 % val, 20 % test of 30
    clean_test = {r.path: r for r in dataset.records(split="test", condition="clean")}
    for condition in CONDITIONS[1:]:
        derived = dataset.records(condition=condition)
        assert sorted(r.parent for r in derived) == sorted(clean_test)
        for record in derived:
            parent = clean_test[record.parent]
            assert (record.split, record.source, record.klass) == ("test", parent.source, parent.klass)
            assert record.operations and record.path != parent.path
    seen_ops = {r.operations[0]["op"] for r in dataset.records(condition="seen-perturbations")}
    unseen_ops = {r.operations[0]["op"] for r in dataset.records(condition="unseen-perturbations")}
    assert seen_ops <= set(manifest["perturbations"]["seen"]) and unseen_ops <= set(manifest["perturbations"]["unseen"])
    assert all(r.operations == () and r.parent is None for r in dataset.records(condition="clean"))
    assert dataset.records(class_group="seen") == dataset.records() and dataset.records(class_group="unseen") == []


def test_every_file_is_hashed_and_stored_the_same_way(dataset: Dataset) -> None:
    manifest_bytes = (dataset.path / "manifest.json").read_bytes()
    assert dataset.sha256 == hashlib.sha256(manifest_bytes).hexdigest()
    records = dataset.records()
    assert sorted(p.relative_to(dataset.path).as_posix() for p in (dataset.path / "files").rglob("*.png")) == \
        sorted(r.path for r in records)
    for record in records:
        data = (dataset.path / record.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == record.sha256 and len(data) == record.size
        with Image.open(dataset.path / record.path) as image:
            assert (image.format, image.mode, set(image.info)) == ("PNG", "RGB", set())
    for condition in CONDITIONS:  # within a condition, every file looks alike but for its pixels
        signatures = {benchkit.format_signature(i) for i in dataset.inputs(dataset.records(condition=condition))}
        assert len(signatures) == 1, condition


def test_the_same_build_gives_the_same_manifest(dataset: Dataset, source_folder: Path, pm, tmp_path: Path) -> None:
    again = build_folders(source_folder, tmp_path / "again", pm=pm, command="test build")
    assert again.sha256 == dataset.sha256


@pytest.mark.parametrize("damage, message", [("modify", "does not match its SHA-256"), ("delete", "is missing")])
def test_a_modified_or_missing_file_is_refused_naming_it(dataset: Dataset, tmp_path: Path, damage: str, message: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(dataset.path, copy)
    victim = dataset.records(split="val")[1]
    if damage == "modify":
        data = bytearray((copy / victim.path).read_bytes())
        data[-20] ^= 0xFF
        (copy / victim.path).write_bytes(bytes(data))
    else:
        (copy / victim.path).unlink()
    with pytest.raises(InvalidInputError, match=message) as raised:
        open_dataset(copy)
    assert victim.path in str(raised.value) and "\n" not in str(raised.value)
    assert open_dataset(copy, verify=False).sha256 == dataset.sha256  # identity is the manifest's


def test_the_cli_refuses_a_damaged_dataset_and_a_non_empty_out_with_one_line(vestige, dataset: Dataset, source_folder: Path,
                                                                               tmp_path: Path) -> None:
    shutil.copytree(dataset.path, tmp_path / "damaged")
    (tmp_path / "damaged" / dataset.records()[0].path).write_bytes(b"not a png")
    result = vestige("bench", "run", "--dataset", tmp_path / "damaged", "--detectors", "metadata", "--out", tmp_path / "o")
    last = result.stderr.strip().splitlines()[-1]
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert last.startswith("error: ") and "does not match its SHA-256" in last
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = vestige("bench", "build", "folders", source_folder, "--out", tmp_path / "full")
    assert result.exit_code == 1 and result.stderr.strip().count("\n") == 0 and "not empty" in result.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_a_failed_build_leaves_nothing_behind(source_folder: Path, pm, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vestige_bench.dataset_builders as builders

    calls = []

    def fail_after_a_few(*args, **kwargs):
        calls.append(1)
        if len(calls) > 3:
            raise RuntimeError("disk full")
        return original(*args, **kwargs)

    original = builders.add_test_conditions
    monkeypatch.setattr(builders, "add_test_conditions", fail_after_a_few)
    with pytest.raises(RuntimeError):
        build_folders(source_folder, tmp_path / "ds", pm=pm)
    assert not (tmp_path / "ds").exists() and not (tmp_path / "ds.partial").exists()
    (tmp_path / "stale.partial").mkdir()
    with pytest.raises(ConflictError, match="stale.partial exists"):
        build_folders(source_folder, tmp_path / "stale", pm=pm)


def test_bad_files_are_skipped_with_one_line_each(vestige, source_folder: Path, tmp_path: Path) -> None:
    src = tmp_path / "src"
    shutil.copytree(source_folder, src)
    (src / "real" / "truncated.jpg").write_bytes((src / "real" / "IMG_0000.jpg").read_bytes()[:300])
    (src / "gen-a" / "notes.txt").write_text("not an image")
    result = vestige("bench", "build", "folders", src, "--out", tmp_path / "ds", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    skipped = [line for line in result.stderr.splitlines() if line.startswith("warning: skipped")]
    assert len(skipped) == 2 and any("truncated.jpg" in s for s in skipped) and any("notes.txt" in s for s in skipped)
    built = open_dataset(tmp_path / "ds")
    assert built.manifest["seed"] == 3 and built.manifest["command"].startswith("vestige bench build folders --out ")
    assert len([r for r in built.records(condition="clean") if r.source == "real"]) == PER_SOURCE
    assert f"manifest SHA-256 {built.sha256}" in result.stdout


def test_differently_sized_sources_are_warned_about_and_crop_evens_them(vestige, tmp_path: Path) -> None:
    for source, size in (("real", 40), ("gen", 32)):
        (tmp_path / "src" / source).mkdir(parents=True)
        for i in range(5):
            benchkit.source_image("real", i, size).save(tmp_path / "src" / source / f"{i}.png")
    result = vestige("bench", "build", "folders", tmp_path / "src", "--out", tmp_path / "a")
    assert result.exit_code == 0 and "differ in size" in result.stderr
    result = vestige("bench", "build", "folders", tmp_path / "src", "--out", tmp_path / "b", "--crop", "32")
    assert result.exit_code == 0 and "differ in size" not in result.stderr
    sizes = {Image.open(tmp_path / "b" / r.path).size for r in open_dataset(tmp_path / "b").records(condition="clean")}
    assert sizes == {(32, 32)}


def test_format_information_alone_scores_at_chance_on_the_dataset(dataset: Dataset, source_folder: Path, pm,
                                                                   tmp_path: Path) -> None:
    detector = benchkit.FormatOnlyDetector()
    # On the lab's own files the container gives the source away: the detector is not blind.
    files = {s: sorted((source_folder / s).iterdir()) for s in benchkit.SOURCES}
    examples = [Example(make_input(p.read_bytes(), name=p.name), s) for s, paths in files.items() for p in paths[:20]]
    detector.use_artifact(ArtifactFile.from_bytes(domainfit.train(detector, TrainingSet(examples, [], benchkit.SOURCES)).data))
    held_out = [(s, p) for s, paths in files.items() for p in paths[20:]]
    findings = run_detector(detector, [make_input(p.read_bytes(), name=p.name) for _, p in held_out])
    assert [predicted_source(f) for f in findings] == [s for s, _ in held_out]
    # On the built dataset every source is stored alike: chance, 1/3, in every test condition.
    summary = run_benchmark(dataset, [benchkit.FormatOnlyDetector()], tmp_path / "out")
    chance = 1 / len(dataset.sources)
    for key, metrics in summary["results"]["test-format-only"].items():
        assert abs(metrics["attribution_accuracy"] - chance) <= 0.05, key


def test_training_set_holds_train_and_val_and_augments_with_seen_corruptions(dataset: Dataset, pm) -> None:
    data = dataset.training_set(pm=pm)
    assert (len(data.train), len(data.validation)) == (63, 9)
    assert data.sources == ("real", "gen-a", "gen-b") and data.dataset_sha256 == dataset.sha256
    image = data.train[0].image.image
    first = data.augment(image, np.random.default_rng(5))
    again = data.augment(image, np.random.default_rng(5))
    assert first.size == image.size and np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(image))
    assert dataset.training_set(augment=False, pm=pm).augment is None


def test_counts_split_train_and_val_over_seen_classes_and_test_half_and_half() -> None:
    plan = Counts(1000, 200, 500).plan()
    assert {c for split, c, _ in plan if split in ("train", "val")} == set(SEEN_CLASSES)
    assert sum(n for split, c, n in plan if split == "test" and c in SEEN_CLASSES) == 250
    assert sum(n for split, c, n in plan if split == "test" and c in UNSEEN_CLASSES) == 250
    assert [n for split, _, n in plan if split == "train"] == [200] * 5
    assert Counts(10, 2, 5).plan()[-5:] == [("test", "airplane", 1), ("test", "automobile", 1), ("test", "bird", 1),
                                            ("test", "dog", 1), ("test", "frog", 1)]


@pytest.mark.slow
def test_zoo32_builds_cifar_and_zoo_samples_with_the_semantic_split(vestige, tmp_path: Path) -> None:
    archive = SHARED / "data" / "cifar10-jpeg.zip"
    if not archive.is_file():
        pytest.skip(f"needs the CIFAR-10 zip at {archive} (../shared is absent)")
    result = vestige("bench", "build", "zoo32", "--out", tmp_path / "z", "--data", archive, "--train", "10", "--val", "2",
                     "--test", "4", "--sources", "vae,real,dcgan-s0")
    assert result.exit_code == 0, result.stderr
    assert "dcgan-s0: train 10/10 images" in result.stderr
    built = open_dataset(tmp_path / "z")
    assert built.sources == ("real", "dcgan-s0", "vae")  # real first, then `vestige zoo list` order
    assert built.seen_classes == SEEN_CLASSES and built.unseen_classes == UNSEEN_CLASSES
    provenance = built.manifest["provenance"]
    assert provenance["cifar10"]["sha256"] == hashlib.sha256(archive.read_bytes()).hexdigest()
    assert set(provenance["generators"]) == {"dcgan-s0", "vae"}
    for source in built.sources:
        mine = [r for r in built.records(condition="clean") if r.source == source]
        assert [len([r for r in mine if r.split == s]) for s in ("train", "val", "test")] == [10, 2, 4]
        assert {r.klass for r in mine if r.split != "test"} <= set(SEEN_CLASSES)
        test = [r for r in mine if r.split == "test"]
        assert [built.class_group(r) for r in test].count("unseen") == 2
    real = [r for r in built.records(condition="clean") if r.source == "real"]
    assert all(r.origin["member"].startswith("test/" if r.split == "test" else "train/") for r in real)
    assert len({r.origin["member"] for r in real}) == len(real)
    # A generator's image is exactly what `vestige zoo sample` draws for the recorded seed, n and index.
    from vestige_zoo.registry import load_generator
    from vestige_zoo.sampling import sample_images

    record = next(r for r in built.records(split="val") if r.source == "vae")
    pixels, _ = sample_images("vae", load_generator("vae"), record.origin["n"], record.origin["seed"], record.klass)
    stored = np.asarray(Image.open(built.path / record.path))
    assert np.array_equal(stored, pixels[record.origin["index"]])


def _zoo_run(folder: Path, steps: tuple[int, ...], seed: int) -> Path:
    """A `vestige zoo train --snapshot-every` output of untrained dcgan-s0 networks (the layout, not a training)."""
    import torch

    from vestige_zoo.catalog import get_model
    from vestige_zoo.weights import save_weights

    for i, step in enumerate(steps):
        torch.manual_seed(seed * 100 + i)
        where = folder if i == len(steps) - 1 else folder / "snapshots" / f"step-{step}"
        path, sha = save_weights(get_model("dcgan-s0").network(), "dcgan-s0", where)
        (where / "dcgan-s0.json").write_text(json.dumps({"name": "dcgan-s0", "weights": path.name, "sha256": sha,
                                                          "seed": seed, "steps": step}))
    return folder


def test_snapshots_builds_one_source_per_snapshot_sampled_with_seeds_of_its_own(vestige, tmp_path: Path) -> None:
    first = _zoo_run(tmp_path / "gan-a", (2, 4, 6), seed=1)
    second = _zoo_run(tmp_path / "gan-b", (3,), seed=2)
    result = vestige("bench", "build", "snapshots", first, second, "--out", tmp_path / "d", "--train", "6", "--val", "2",
                     "--test", "4")
    assert result.exit_code == 0, result.stderr
    built = open_dataset(tmp_path / "d")
    assert built.sources == ("gan-a-step2", "gan-a-step4", "gan-a-step6", "gan-b-step3")  # generators only
    assert built.jpeg_history() == {}  # known: no sample was ever JPEG-compressed
    generators = built.manifest["provenance"]["generators"]
    assert generators["gan-a-step4"]["run"] == "gan-a" and generators["gan-a-step4"]["steps"] == 4
    assert generators["gan-b-step3"]["weights_sha256"] == json.loads((second / "dcgan-s0.json").read_text())["sha256"]
    clean = built.records(condition="clean")
    assert [len([r for r in clean if r.source == "gan-a-step2" and r.split == s]) for s in ("train", "val", "test")] == [6, 2, 4]
    seeds = {r.source: r.origin["seed"] for r in clean if r.split == "train" and r.klass == "airplane"}
    assert len(set(seeds.values())) == 4  # no two sources share a latent
    # every image replays from its snapshot with the recorded seed, n and index
    from vestige_zoo.registry import load_trained_generator
    from vestige_zoo.sampling import sample_images

    record = next(r for r in clean if r.source == "gan-a-step4" and r.split == "val")
    _, generator, _ = load_trained_generator(first / "snapshots" / "step-4")
    pixels, _ = sample_images("dcgan-s0", generator, record.origin["n"], record.origin["seed"], record.klass)
    assert np.array_equal(np.asarray(Image.open(built.path / record.path)), pixels[record.origin["index"]])


def test_snapshots_refuses_a_lone_generator_a_damaged_snapshot_and_a_clash_of_names(vestige, tmp_path: Path) -> None:
    lone = _zoo_run(tmp_path / "lone", (5,), seed=1)
    result = vestige("bench", "build", "snapshots", lone, "--out", tmp_path / "d1")
    assert result.exit_code == 1 and "at least two" in result.stderr and not (tmp_path / "d1").exists()
    run = _zoo_run(tmp_path / "run", (1, 2), seed=3)
    weights = next((run / "snapshots" / "step-1").glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    result = vestige("bench", "build", "snapshots", run, "--out", tmp_path / "d2")
    assert result.exit_code == 1 and "does not match" in result.stderr and result.stderr.strip().count("\n") == 0
    assert not (tmp_path / "d2").exists()
    (tmp_path / "other").mkdir()
    twin = _zoo_run(tmp_path / "other" / "lone", (5,), seed=4)
    result = vestige("bench", "build", "snapshots", lone, twin, "--out", tmp_path / "d3")
    assert result.exit_code == 1 and "lone-step5" in result.stderr
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "dcgan-s0.json").write_text("{not json")
    result = vestige("bench", "build", "snapshots", tmp_path / "broken", lone, "--out", tmp_path / "d4")
    assert result.exit_code == 1 and "cannot be read" in result.stderr and result.stderr.strip().count("\n") == 0
