"""The model weights registry: artifacts stored by hash, verified on every load, defaults, pinning."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from conftest import encode, photo
from vestige.analysis.detect import make_input
from vestige.core.errors import BlobCorruptedError, InvalidInputError, NotFoundError
from vestige.models.artifacts import Registry, attach, choose
from vestige.plugin import ImageInput
from vestige.plugin.training import (
    ArtifactFile,
    Example,
    NoModelError,
    TrainableDetector,
    TrainedModel,
    TrainingSet,
    pack_artifact,
    unpack_artifact,
)


class MeanColour(TrainableDetector):
    """Nearest mean colour per source: small, real and exact, enough to exercise the registry."""

    name = "meancolour"
    version = "1.0"
    kind = "attribution"

    def __init__(self, shipped: ArtifactFile | None = None) -> None:
        self._shipped = shipped
        self._means: np.ndarray | None = None
        self._sources: list[str] = []

    def fit(self, data: TrainingSet, *, seed: int = 0, options: Mapping[str, Any] | None = None,
            progress: Any = None, device: str = "cpu") -> TrainedModel:
        means = np.stack([np.mean([np.asarray(e.image.image, np.float32).mean((0, 1)) for e in data.train
                                   if e.source == s], axis=0) for s in data.sources])
        blob = pack_artifact({"means": means}, detector=self.name, version=self.version,
                             info={"sources": list(data.sources)})
        return TrainedModel(blob, metrics={"accuracy": 1.0})

    def use_artifact(self, artifact: ArtifactFile) -> None:
        self._artifact = artifact
        self._means = artifact.tensors()["means"]
        self._sources = list(artifact.info["sources"])

    def shipped_artifact(self) -> ArtifactFile | None:
        return self._shipped

    def analyze(self, batch: Sequence[ImageInput]) -> list:
        self.require_artifact()
        assert self._means is not None
        out = []
        for item in batch:
            colour = np.asarray(item.image, np.float32).mean((0, 1))
            best = self._sources[int(np.argmin(((self._means - colour) ** 2).sum(1)))]
            out.append(self.finding(label="real" if best == "real" else "synthetic",
                                    source=None if best == "real" else best))
        return out


def tinted(seed: int, tint: tuple[int, int, int]) -> ImageInput:
    pixels = np.clip(np.asarray(photo(seed, 32), np.int16) // 2 + np.array(tint, np.int16), 0, 255).astype(np.uint8)
    return make_input(encode(Image.fromarray(pixels), "PNG"), name=f"{seed}.png")


TINTS = {"real": (0, 0, 0), "gen-a": (120, 0, 0), "gen-b": (0, 0, 120)}


def training_set() -> TrainingSet:
    train = [Example(tinted(i, t), s) for s, t in TINTS.items() for i in range(4)]
    return TrainingSet(train=train, validation=train[:3], sources=tuple(TINTS))


def test_pack_artifact_is_byte_stable_and_carries_its_header() -> None:
    tensors = {"b": np.arange(6, dtype=np.float16).reshape(2, 3), "a": np.ones(4, np.float32)}
    first = pack_artifact(tensors, detector="d", version="1", info={"z": 1, "a": [1, 2]})
    second = pack_artifact(dict(reversed(list(tensors.items()))), detector="d", version="1", info={"a": [1, 2], "z": 1})
    assert first == second
    assert unpack_artifact(first) == {"detector": "d", "version": "1", "info": {"a": [1, 2], "z": 1}}
    loaded = ArtifactFile.from_bytes(first).tensors()
    assert loaded["b"].dtype == np.float16 and loaded["b"].tolist() == tensors["b"].tolist()


@pytest.mark.parametrize("data", [b"", b"not an artifact at all", (10).to_bytes(8, "little") + b"{}"])
def test_unpack_refuses_other_files_in_one_line(data: bytes) -> None:
    with pytest.raises(InvalidInputError) as err:
        unpack_artifact(data, name="x.bin")
    assert "x.bin" in str(err.value) and "\n" not in str(err.value)


def test_safetensors_without_vestige_header_is_refused() -> None:
    from safetensors.numpy import save

    with pytest.raises(InvalidInputError, match="without Vestige's header"):
        unpack_artifact(save({"w": np.zeros(2, np.float32)}), name="plain.safetensors")


def test_register_default_and_attach(workspace) -> None:
    detector = MeanColour()
    model = detector.fit(training_set())
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        row = registry.register_trained(detector, model, dataset_sha256="d" * 64, info={"seed": 0})
        again = registry.register_trained(detector, model, dataset_sha256="d" * 64)
        assert again.id == row.id and row.origin == "trained" and not row.is_default
        assert attach(detector, registry) is None  # no default, nothing shipped
        registry.set_default(row)
        assert attach(detector, registry) == model.sha256
        assert registry.get(model.sha256[:10]).id == row.id and registry.get(str(row.id)).id == row.id
    finding = detector.analyze([tinted(99, TINTS["gen-b"])])[0]
    assert (finding.label, finding.source, finding.model_sha256) == ("synthetic", "gen-b", model.sha256)


def test_named_beats_default_beats_shipped(workspace) -> None:
    fitted = MeanColour().fit(training_set())
    shipped = ArtifactFile.from_bytes(fitted.data, origin="shipped")
    other = pack_artifact({"means": np.zeros((3, 3), np.float32)}, detector="meancolour", version="1.0",
                          info={"sources": list(TINTS)})
    detector = MeanColour(shipped=shipped)
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        assert choose(detector, registry).sha256 == shipped.sha256
        row = registry.add(other, origin="imported", make_default=True)
        assert choose(detector, registry).sha256 == row.sha256
    with workspace.db.session() as session, pytest.raises(NotFoundError):  # named, but not in the registry
        choose(detector, Registry(session, workspace.store), fitted.sha256)
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        registry.add(fitted.data, origin="trained")
        assert choose(detector, registry, fitted.sha256).sha256 == fitted.sha256
    assert choose(detector, None).sha256 == shipped.sha256  # no workspace: what the plugin ships


def test_a_modified_artifact_is_refused(workspace) -> None:
    detector = MeanColour()
    model = detector.fit(training_set())
    with workspace.db.session() as session:
        row = Registry(session, workspace.store).add(model.data, origin="trained", make_default=True)
    path = workspace.store.path_for(row.sha256)
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with workspace.db.session() as session, pytest.raises(BlobCorruptedError):
        attach(MeanColour(), Registry(session, workspace.store))


def test_analyze_without_a_model_says_how_to_get_one() -> None:
    with pytest.raises(NoModelError, match="vestige train meancolour --dataset DIR"):
        MeanColour().analyze([tinted(0, (0, 0, 0))])


def test_artifact_for_another_detector_is_refused(workspace) -> None:
    blob = pack_artifact({"w": np.zeros(1, np.float32)}, detector="other", version="1")
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        row = registry.add(blob, origin="imported")
        with pytest.raises(InvalidInputError, match="for detector other, not meancolour"):
            attach(MeanColour(), registry, row.sha256)


def test_training_set_checks_its_labels() -> None:
    with pytest.raises(InvalidInputError, match="no training images"):
        TrainingSet(train=[], validation=[], sources=("real",))
    with pytest.raises(InvalidInputError, match="not in its source list: gen-z"):
        TrainingSet(train=[Example(tinted(0, (0, 0, 0)), "gen-z")], validation=[], sources=("real",))


def knn_artifact(tmp_path: Path, value: float = 0.0) -> Path:
    """An artifact file for the installed ``knn`` baseline, as another lab would export it."""
    blob = pack_artifact({"pixels": np.full((2, 3 * 4 * 4), int(value), np.uint8), "labels": np.array([0, 1], np.int64)},
                         detector="knn", version="0.0-test", info={"sources": ["real", "gen-a"], "size": 4, "k": 1})
    path = tmp_path / f"knn-{value}.safetensors"
    path.write_bytes(blob)
    return path


def test_models_cli_import_list_show_default_export(vestige, workspace, tmp_path: Path) -> None:
    path = knn_artifact(tmp_path)
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    result = vestige("models", "import", path, "--json")
    assert result.exit_code == 0, result.stderr
    imported = json.loads(result.stdout)
    assert (imported["detector"], imported["sha256"], imported["origin"], imported["default"]) == ("knn", sha, "imported", False)
    listed = json.loads(vestige("models", "list", "--detector", "knn", "--json").stdout)
    assert [r["sha256"] for r in listed] == [sha]
    assert json.loads(vestige("models", "show", sha[:12]).stdout)["verified"] is True
    assert vestige("models", "default", sha[:12]).exit_code == 0
    assert json.loads(vestige("models", "show", str(imported["id"])).stdout)["default"] is True
    out = tmp_path / "exported"
    out.mkdir()
    assert vestige("models", "export", sha[:12], "--out", out).exit_code == 0
    assert hashlib.sha256((out / path.name).read_bytes()).hexdigest() == sha
    again = vestige("models", "export", sha[:12], "--out", out)
    assert again.exit_code != 0 and "exists" in again.stderr
    assert vestige("models", "reset-default", "knn").exit_code == 0
    assert json.loads(vestige("models", "show", sha[:12]).stdout)["default"] is False


def test_models_cli_errors_are_one_line(vestige, workspace, tmp_path: Path) -> None:
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    for args, needle in [
        (("models", "import", junk), "is not a Vestige model artifact"),
        (("models", "show", "deadbeefdeadbeef"), "no model artifact deadbeefdeadbeef"),
        (("models", "import", tmp_path / "missing.safetensors"), "cannot read"),
    ]:
        result = vestige(*args)
        assert result.exit_code != 0 and needle in result.stderr and result.stderr.count("\n") == 1, result.stderr
    foreign = pack_artifact({"w": np.zeros(1, np.float32)}, detector="nosuchdetector", version="1")
    (tmp_path / "foreign.safetensors").write_bytes(foreign)
    result = vestige("models", "import", tmp_path / "foreign.safetensors")
    assert result.exit_code != 0 and "not installed" in result.stderr
    with workspace.db.session() as session:
        assert Registry(session, workspace.store).list() == []


def test_a_tampered_default_is_refused_by_show_and_detect(vestige, workspace, tmp_path: Path) -> None:
    path = knn_artifact(tmp_path)
    sha = json.loads(vestige("models", "import", path, "--default", "--json").stdout)["sha256"]
    blob = workspace.store.path_for(sha)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes()[:-1] + b"\x01")
    result = vestige("models", "show", sha[:12])
    assert result.exit_code != 0 and "corrupted" in result.stderr
    image = tmp_path / "x.png"
    image.write_bytes(encode(photo(1, 32), "PNG"))
    result = vestige("detect", image, "--detector", "knn")
    assert result.exit_code != 0 and "corrupted" in result.stderr


def test_detectors_without_a_model_are_skipped_when_all_run_and_refused_when_named(vestige, workspace, tmp_path) -> None:
    image = tmp_path / "x.png"
    image.write_bytes(encode(photo(1, 32), "PNG"))
    result = vestige("detect", image, "--json")
    assert result.exit_code == 0, result.stderr
    ran = {json.loads(line)["detector"] for line in result.stdout.splitlines()}
    assert "metadata" in ran and "knn" not in ran and result.stderr == ""
    result = vestige("detect", image, "--detector", "knn")
    assert result.exit_code != 0
    assert result.stderr.strip() == ("error: detector knn has no trained model: train one with `vestige train knn "
                                     "--dataset DIR` or import one with `vestige models import FILE --default`")


def test_an_analysis_pins_the_default_model_and_its_verdicts_name_it(vestige, workspace, tmp_path) -> None:
    from vestige.core.plugins import get_detectors, get_plugin_manager
    from vestige.db.models import Analysis, Verdict
    from vestige.evidence.cases import get_case

    knn = get_detectors(get_plugin_manager())["knn"]
    model = knn.fit(training_set(), seed=0)
    with workspace.db.session() as session:
        Registry(session, workspace.store).register_trained(knn, model, dataset_sha256=None, make_default=True)
    assert vestige("case", "new", "--ref", "PIN-1", "--title", "pinning").exit_code == 0
    folder = tmp_path / "evidence"
    folder.mkdir()
    for i, (source, tint) in enumerate(TINTS.items()):
        (folder / f"{source}.png").write_bytes(tinted(100 + i, tint).data)
    assert vestige("ingest", "PIN-1", folder).exit_code == 0
    result = vestige("analyze", "PIN-1", "--detectors", "knn", "--wait")
    assert result.exit_code == 0, result.stderr
    with workspace.db.session() as session:
        case = get_case(session, "PIN-1")
        analysis = session.query(Analysis).filter_by(case_id=case.id).one()
        assert analysis.options["models"] == {"knn": model.sha256}
        verdicts = session.query(Verdict).filter_by(analysis_id=analysis.id).all()
        assert len(verdicts) == 3 and {v.model_sha256 for v in verdicts} == {model.sha256}
        assert all(v.error is None for v in verdicts)


def test_changing_the_default_mid_analysis_does_not_change_its_verdicts(vestige, workspace, tmp_path) -> None:
    from vestige.core.plugins import get_detectors, get_plugin_manager
    from vestige.db.models import Analysis, Verdict
    from vestige.evidence.cases import get_case
    from vestige.jobs.dispatch import run_in_process

    knn = get_detectors(get_plugin_manager())["knn"]
    first = knn.fit(training_set(), seed=0)
    second = knn.fit(training_set(), seed=0, options={"k": 3})
    assert first.sha256 != second.sha256
    with workspace.db.session() as session:
        registry = Registry(session, workspace.store)
        registry.register_trained(knn, first, dataset_sha256=None, make_default=True)
        later = registry.register_trained(knn, second, dataset_sha256=None)
    assert vestige("case", "new", "--ref", "PIN-2", "--title", "pinning").exit_code == 0
    image = tmp_path / "one.png"
    image.write_bytes(tinted(7, TINTS["gen-a"]).data)
    assert vestige("ingest", "PIN-2", image).exit_code == 0
    assert vestige("analyze", "PIN-2", "--detectors", "knn").exit_code == 0  # queued, no worker yet
    assert vestige("models", "default", later.sha256[:12]).exit_code == 0
    with workspace.db.session() as session:
        analysis_id = session.query(Analysis).filter_by(case_id=get_case(session, "PIN-2").id).one().id
    run_in_process(workspace, analysis_id)
    with workspace.db.session() as session:
        assert [v.model_sha256 for v in session.query(Verdict).filter_by(analysis_id=analysis_id)] == [first.sha256]
