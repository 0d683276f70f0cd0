"""The benchmark harness: metrics against hand-computed values, a whole run, `vestige bench run`, --record."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

import benchkit
from vestige.core.plugins import get_plugin_manager, register_plugin
from vestige.models.attribution_metrics import auroc, confusion_matrix, macro_f1, normalized_mutual_information
from vestige.models.datasets import Dataset, Record
from vestige.plugin import Finding
from vestige_bench.dataset_builders import build_folders
from vestige_bench.harness import SINGLE_CONDITIONS, condition_metrics, git_commit, markdown_table, run_benchmark

REPO_DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


@pytest.fixture(scope="module")
def pm():
    manager = get_plugin_manager()
    register_plugin(manager, benchkit, name="benchkit")
    return manager


@pytest.fixture(scope="module")
def dataset(pm, tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    root = tmp_path_factory.mktemp("harness")
    return build_folders(benchkit.write_source_folder(root / "reference", 30), root / "ds", pm=pm)


@pytest.fixture
def with_test_detectors(monkeypatch: pytest.MonkeyPatch):
    """`vestige` commands in this test also load the test detectors, as an installed plugin's would be."""
    import vestige.cli.app as app

    def manager(allow=()):
        pm = get_plugin_manager(allow)
        register_plugin(pm, benchkit, name="benchkit")
        return pm

    monkeypatch.setattr(app, "get_plugin_manager", manager)


# ---------------------------------------------------------------------------
# metrics, on values worked out by hand


@pytest.mark.parametrize("true, predicted, expected", [
    ([0, 0, 1, 1], [0, 0, 1, 1], 1.0),
    ([0, 0, 1, 1], [1, 1, 0, 0], 1.0),  # names do not matter, the grouping does
    ([0, 0, 1, 1], [0, 1, 0, 1], 0.0),
    # H(true) = ln 2, H(pred) = 0.562335, MI = 0.215762 -> 0.215762 / 0.627741
    ([0, 0, 1, 1], [0, 0, 0, 1], 0.343711),
    (["a", "a"], ["x", "x"], 1.0),
])
def test_nmi(true, predicted, expected) -> None:
    assert normalized_mutual_information(true, predicted) == pytest.approx(expected, abs=1e-6)


def test_macro_f1_averages_over_the_true_classes_and_counts_unknown_against_precision_and_recall() -> None:
    true = ["a", "a", "b", "b", "c"]
    predicted = ["a", "b", "b", "b", "unknown"]
    # a: P 1/1, R 1/2 -> 2/3; b: P 2/3, R 2/2 -> 4/5; c: 0
    assert macro_f1(true, predicted) == pytest.approx((2 / 3 + 4 / 5 + 0) / 3)


@pytest.mark.parametrize("scores, positive, expected", [
    ([0.9, 0.8, 0.7, 0.6, 0.5], [True, False, True, False, False], 5 / 6),
    ([0.5, 0.5], [True, False], 0.5),  # a tie counts one half
    ([0.1, 0.9], [True, False], 0.0),
    ([0.3, 0.4], [True, True], None),  # no negatives: undefined
])
def test_auroc(scores, positive, expected) -> None:
    assert auroc(scores, positive) == (expected if expected is None else pytest.approx(expected))


def test_condition_metrics_count_unknown_and_errors_as_wrong() -> None:
    records = [Record(f"files/test/{s}/{i}.png", "0" * 64, 1, s, None, "test") for i, s in
               enumerate(["real", "real", "gen-a", "gen-a", "gen-b", "gen-b"])]

    def f(label, source=None, error=None, scores=None):
        return Finding(detector="d", detector_version="1", label=label, source=source, error=error, scores=scores or {})

    findings = [f("real", scores={"gen-a": 0.1, "gen-b": 0.2}), f("synthetic", "gen-b", scores={"gen-a": 0.3, "gen-b": 0.9}),
                f("synthetic", "gen-a", scores={"gen-a": 0.9, "gen-b": 0.1}), f("unknown", scores={"gen-a": 0.8, "gen-b": 0.4}),
                f("synthetic", None, scores={"gen-a": 0.2, "gen-b": 0.5}), f("unknown", error="RuntimeError: boom")]
    m = condition_metrics(records, findings, ("real", "gen-a", "gen-b"), "verification")
    assert m["n"] == 6 and m["errors"] == 1 and m["unknown_rate"] == pytest.approx(2 / 6)
    # detection: real ok, real->synthetic wrong, gen-a ok, unknown wrong, synthetic ok, error wrong
    assert m["detection_accuracy"] == pytest.approx(3 / 6)
    assert m["detection_balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["attribution_accuracy"] == pytest.approx(2 / 6)  # only the first and the third
    assert m["confusion"]["columns"] == ["real", "gen-a", "gen-b", "synthetic", "unknown"]
    assert m["confusion"]["matrix"] == [[1, 0, 1, 0, 0], [0, 1, 0, 0, 1], [0, 0, 0, 1, 1]]
    assert m["per_source_accuracy"] == {"real": 0.5, "gen-a": 0.5, "gen-b": 0.0}
    v = m["verification"]
    # gen-a's score over its own two images (0.9, 0.8) against the three others that were scored (0.1, 0.3, 0.2)
    assert v["gen-a"]["auroc"] == 1.0 and v["gen-a"]["scored"] == 5
    assert v["gen-b"]["auroc"] == pytest.approx(3 / 4)  # own: 0.5 (the error is unscored); beats 0.2, 0.1, 0.4, not 0.9
    assert v["gen-b"]["fpr"] == pytest.approx(1 / 4) and v["gen-b"]["tpr"] == 0.0  # a real image named gen-b
    assert v["gen-a"]["fpr"] == 0.0 and v["gen-a"]["tpr"] == 0.5
    assert confusion_matrix(["a", "b"], ["b", "zzz"], ["a", "b"], ["a", "b"]) == [[0, 1], [0, 0]]


# ---------------------------------------------------------------------------
# whole runs


def test_a_run_trains_evaluates_every_condition_and_writes_json_markdown_and_pictures(dataset: Dataset, tmp_path: Path) -> None:
    out = tmp_path / "out"
    detectors = [benchkit.MeanColourDetector(), benchkit.ColourVerifier(), benchkit.BrokenDetector()]
    registered = []
    summary = run_benchmark(dataset, detectors, out, seed=1, register=lambda d, m, p: registered.append((d.name, p)) or "ok")
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk["dataset"]["sha256"] == dataset.sha256 and on_disk["results"] == json.loads(json.dumps(summary["results"]))
    assert on_disk["conditions"] == ["clean/seen", "seen-perturbations/seen", "unseen-perturbations/seen", "reshared/seen",
                                     *(f"{c}/seen" for c in SINGLE_CONDITIONS)]
    colour = summary["results"]["test-mean-colour"]
    chance = 1 / 3
    assert colour["clean/seen"]["attribution_accuracy"] >= 0.9 > chance + 0.5
    assert colour["clean/seen"]["nmi"] >= 0.8 and colour["clean/seen"]["macro_f1"] >= 0.9
    info = {d["name"]: d for d in summary["detectors"]}
    model_file = out / info["test-mean-colour"]["artifact_path"]
    assert model_file.name == f"test-mean-colour-{info['test-mean-colour']['artifact_sha256'][:8]}.safetensors"
    assert benchkit.file_sha256(model_file) == info["test-mean-colour"]["artifact_sha256"]
    assert info["test-mean-colour"]["trained"] and info["test-mean-colour"]["registered"] == "ok"
    assert [name for name, _ in registered] == ["test-mean-colour", "test-colour-verifier"]
    assert not info["test-broken"].get("trained") and "artifact_sha256" not in info["test-broken"]
    broken = summary["results"]["test-broken"]["clean/seen"]
    assert broken["errors"] == broken["n"] == 18 and broken["attribution_accuracy"] == 0.0
    assert "always fails" in broken["first_error"]
    verifier = summary["results"]["test-colour-verifier"]["clean/seen"]["verification"]
    assert set(verifier) == {"gen-a", "gen-b"} and verifier["gen-a"]["auroc"] >= 0.9
    markdown = (out / "results.md").read_text()
    assert dataset.sha256 in markdown
    assert "| `test-mean-colour` | clean | seen | 18 |" in markdown and "| verifier | condition |" in markdown
    with Image.open(out / colour["clean/seen"]["picture"]) as picture:
        assert picture.format == "PNG" and picture.width > 100
    assert len(list(out.glob("confusion-*.png"))) == 3 * (4 + len(SINGLE_CONDITIONS))
    # one re-sharing step at a time: a JPEG step reaches the detector as a JPEG file, a resize at its new size
    jpeg = colour["jpeg-50/seen"]
    assert jpeg["n"] == 18 and jpeg["attribution_accuracy"] >= 0.8  # mean colour survives JPEG 50
    assert "| `test-mean-colour` | resize-0.75+jpeg-75 | seen | 18 |" in markdown


def test_limit_takes_the_same_share_of_each_source(dataset: Dataset, tmp_path: Path) -> None:
    summary = run_benchmark(dataset, [benchkit.BrokenDetector()], tmp_path / "o", limit=9)
    matrix = summary["results"]["test-broken"]["clean/seen"]["confusion"]["matrix"]
    assert [sum(row) for row in matrix] == [3, 3, 3]


def test_a_detector_that_cannot_train_is_reported_and_the_others_still_run(dataset: Dataset, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise ValueError("not enough images")

    failing = benchkit.MeanColourDetector()
    monkeypatch.setattr(failing, "fit", refuse)
    summary = run_benchmark(dataset, [failing, benchkit.FormatOnlyDetector()], tmp_path / "o")
    assert "training failed: ValueError: not enough images" in summary["detectors"][0]["error"]
    assert summary["results"]["test-mean-colour"] == {} and summary["results"]["test-format-only"]


def test_bench_run_cli_with_options_models_and_record(vestige, with_test_detectors, workspace, dataset: Dataset,
                                                     tmp_path: Path) -> None:
    docs = tmp_path / "docs" / "benchmarks.md"
    docs.parent.mkdir()
    shutil.copy(REPO_DOCS, docs)
    for command in (["init", "-q"], ["add", "docs"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "docs"]):
        subprocess.run(["git", "-C", str(tmp_path), *command], check=True, capture_output=True)
    commit = git_commit(tmp_path)
    assert "+dirty" not in commit and len(commit) >= 7

    result = vestige("bench", "run", "--dataset", dataset.path, "--detectors", "test-mean-colour,test-format-only",
                     "--out", "out", "--option", "test-mean-colour.augment=true", "--record")
    assert result.exit_code == 0, result.stderr
    assert "| `test-mean-colour` | clean | seen |" in result.stdout and "training on 63 images" in result.stderr
    summary = json.loads((tmp_path / "out" / "results.json").read_text())
    assert summary["command"].startswith(f"vestige bench run --dataset {dataset.path} --detectors ")
    assert "--option test-mean-colour.augment=true" in summary["command"] and "--record" in summary["command"]
    recorded = docs.read_text()
    assert recorded.startswith(REPO_DOCS.read_text().rstrip("\n"))
    section = recorded[len(REPO_DOCS.read_text().rstrip("\n")):]
    assert "## Harness: test-mean-colour, test-format-only on reference" in section
    assert summary["command"] in section and f"Commit `{commit}`" in section and dataset.sha256 in section
    assert "| `test-format-only` | reshared | seen |" in section
    assert git_commit(tmp_path) == commit + "+dirty"  # the record itself changed the checkout
    listed = json.loads(vestige("models", "list", "--json").stdout)  # trained models are in the workspace's registry
    assert [(m["detector"], m["sha256"], m["origin"]) for m in listed if m["detector"] == "test-mean-colour"] == \
        [("test-mean-colour", summary["detectors"][0]["artifact_sha256"], "trained")]
    assert summary["detectors"][0]["registered"]["sha256"] == summary["detectors"][0]["artifact_sha256"]

    artifact = tmp_path / "out" / summary["detectors"][0]["artifact_path"]
    again = vestige("bench", "run", "--dataset", dataset.path, "--detectors", "test-mean-colour", "--out", "again",
                    "--model", f"test-mean-colour={artifact}")
    assert again.exit_code == 0, again.stderr
    assert "training on" not in again.stderr
    replay = json.loads((tmp_path / "again" / "results.json").read_text())
    assert replay["detectors"][0]["trained"] is False
    assert replay["detectors"][0]["artifact_sha256"] == summary["detectors"][0]["artifact_sha256"]
    assert replay["results"]["test-mean-colour"] == summary["results"]["test-mean-colour"]


@pytest.mark.parametrize("arguments, message", [
    (["--detectors", "nope"], "no detector named 'nope'"),
    (["--detectors", "test-mean-colour", "--option", "test-mean-colour.depth=3"], "has no training option 'depth'; its options: augment"),
    (["--detectors", "test-mean-colour", "--option", "test-mean-colour.augment=maybe"], "takes a bool"),
    (["--detectors", "test-mean-colour", "--option", "augment=1"], "takes DETECTOR.KEY=VALUE"),
    (["--detectors", "test-broken", "--model", "test-broken=abc"], "not a trainable detector"),
    (["--detectors", "test-mean-colour", "--record"], "run it from the repository root"),
    (["--detectors", " , "], "names no detector"),
])
def test_bench_run_refuses_bad_arguments_with_one_line(vestige, with_test_detectors, dataset: Dataset, arguments, message) -> None:
    result = vestige("bench", "run", "--dataset", dataset.path, "--out", "o", *arguments)
    assert result.exit_code != 0 and message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_nmi_of_a_constant_prediction_is_zero_when_the_truth_varies() -> None:
    assert normalized_mutual_information(["a", "b", "c"], ["x", "x", "x"]) == 0.0
    assert math.isclose(normalized_mutual_information(["a", "b"], ["x", "y"]), 1.0)


def test_a_dataset_without_real_images_has_no_detection_columns(tmp_path: Path) -> None:
    """Issue 18: real against synthetic means nothing among generators only; the harness leaves it out."""
    records = [Record(f"files/test/{s}/{i}.png", "0" * 64, 1, s, None, "test") for i, s in enumerate(["gen-a", "gen-b"])]
    findings = [Finding(detector="d", detector_version="1", label="synthetic", source=s) for s in ("gen-a", "gen-a")]
    m = condition_metrics(records, findings, ("gen-a", "gen-b"), "attribution")
    assert m["detection_accuracy"] is None and m["detection_balanced_accuracy"] is None
    assert m["attribution_accuracy"] == 0.5
    summary = {"detectors": [{"name": "d"}], "results": {"d": {"clean/seen": m}}}
    table = markdown_table(summary)
    assert "detection" not in table and "| `d` | clean | seen | 2 | 0.500 |" in table
    # a model its time budget cut short keeps its rows, each marked as such
    summary["detectors"] = [{"name": "d", "under_trained": True}]
    assert "| `d` (under-trained: stopped by its time budget) | clean | seen | 2 | 0.500 |" in markdown_table(summary)
