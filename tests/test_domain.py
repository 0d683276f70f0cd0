"""The validated domain (vestige.plugin.domain): the record every artifact carries, each abstention reason,
the four outcomes, the refit command, and abstention on real camera photographs."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from vestige.analysis.detect import make_input, run_detector
from vestige.plugin import ShippedManifest, domain as dom
from vestige.plugin.training import ArtifactFile, pack_artifact
from vestige_fingerprint.detector import FingerprintDetector
from vestige_fingerprint.weights import WEIGHTS_DIR, shipped
from vestige_manifpt.detector import ManifptDetector
from vestige_repmix.detector import RepMixDetector

ZOO = ("real", "dcgan-s0", "dcgan-s1", "nnup-hinge", "pixelshuffle-wgangp", "stylegan-mini", "vae", "ddpm-ddim")


def encoded(image: Image.Image, fmt: str = "PNG", **options) -> bytes:
    buf = io.BytesIO()
    image.save(buf, fmt, **options)
    return buf.getvalue()


def noise(side: int, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (side, side, 3), dtype=np.uint8))


def shipped_artifacts() -> list[ArtifactFile]:
    fingerprint = [shipped(name) for name in ShippedManifest.read(WEIGHTS_DIR).entries]
    return [*fingerprint, RepMixDetector().shipped_artifact(), ManifptDetector().shipped_artifact()]


# -- the record ---------------------------------------------------------------------


@pytest.mark.parametrize("artifact", shipped_artifacts(), ids=lambda a: f"{a.detector}-{a.sha256[:8]}")
def test_every_shipped_artifact_carries_its_validated_domain(artifact):
    domain = artifact.domain
    assert domain is not None, f"shipped artifact {artifact.sha256[:12]} has no validated domain"
    assert domain["format"] == dom.DOMAIN_FORMAT and domain["sources"] == list(ZOO)
    assert domain["sizes"] == [[32, 32]] and domain["input_side"] == 32
    # smaller scales are admitted only where the validation split, resized, still met the evidence standard
    admitted = [float(k) for k, v in domain["scales"].items() if v["admitted"]]
    assert domain["scale_range"] == [min([1.0, *admitted]), 1.0]
    for rates in domain["scales"].values():
        if rates["admitted"]:
            assert rates["real_accused"] <= domain["accusation"]["rate"] and rates["named_wrong"] <= 0.02
    assert domain["dataset_sha256"] == artifact.info["dataset_sha256"]
    assert domain["jpeg_history"] == {"real": [75, 75]}
    low, high = domain["jpeg_qualities"]
    assert low <= 75 <= high
    novelty = artifact.novelty()
    assert novelty is not None and novelty.means.shape == (len(ZOO), domain["novelty"]["dim"])
    assert len(domain["novelty"]["thresholds"]) == len(ZOO)
    assert domain["accusation"]["measured_rate"] <= domain["accusation"]["rate"]
    assert set(domain["held_out_generators"]) == set(ZOO[1:])
    assert "refit_of" in domain and domain["command"].startswith("vestige models refit-domain")
    # the network's tensors are what they were: the domain's are kept apart
    assert not any(k.startswith(dom.TENSOR_PREFIX) for k in artifact.tensors())


# -- gates 1 and 2 -----------------------------------------------------------------------

DOMAIN = {"sizes": [[32, 32]], "scale_range": [1.0, 1.0], "jpeg_qualities": [70, 80]}


def admit(domain, image: Image.Image, fmt: str = "PNG", **options) -> str | None:
    data = encoded(image, fmt, **options)
    return dom.admit(domain, width=image.width, height=image.height, data=data, fmt=fmt)


def test_each_geometry_and_jpeg_reason():
    assert admit(DOMAIN, noise(32)) is None
    assert admit(DOMAIN, noise(32), "JPEG", quality=75) is None
    assert admit(DOMAIN, Image.new("RGB", (640, 427))) == (
        "outside the validated domain: a 640×427 image, the model was validated on 32×32 images")
    assert "a 64×64 image" in admit(DOMAIN, noise(64))  # an upscaled sample is not judged either
    assert admit(DOMAIN, noise(32), "JPEG", quality=95) == (
        "outside the validated domain: a JPEG of quality about 95, the model was validated on JPEG qualities 70–80")
    flat = [4] * 64
    assert "non-standard quantisation tables" in admit(DOMAIN, noise(32), "JPEG", qtables=[flat, flat])
    assert "no JPEG-compressed images" in admit({**DOMAIN, "jpeg_qualities": None}, noise(32), "JPEG", quality=75)
    # a dataset whose JPEG history is unknown records no range, and the JPEG gate is not applied
    assert admit({"sizes": [[32, 32]]}, noise(32), "JPEG", quality=95) is None
    assert "records no validated domain" in admit(None, noise(32)) and "refit-domain" in admit(None, noise(32))
    # a model validated on scaled inputs admits those scales, at the validated aspect only
    scaled = {"sizes": [[32, 32]], "scale_range": [0.5, 1.0]}
    assert admit(scaled, noise(16)) is None and admit(scaled, noise(24)) is None
    assert admit(scaled, Image.new("RGB", (32, 24))) is not None and admit(scaled, noise(40)) is not None


# -- gate 3 and the four outcomes --------------------------------------------------------

SOURCES = ("real", "gan-a", "gan-b")


def decided(probabilities, features, *, accusation=0.9, threshold=0.6):
    novelty = dom.Novelty(means=np.eye(3) * 10, precision=np.eye(3))
    domain = {"novelty": {"thresholds": [1.0, 1.0, 1.0]}, "accusation": {"threshold": accusation}}
    scores = dom.DomainScores(np.array(probabilities, dtype=np.float64), np.array(features, dtype=np.float64))
    return dom.decide(domain, novelty, scores, SOURCES, threshold)


def test_the_four_outcomes_and_their_reasons():
    near = lambda k: np.eye(3)[k] * 10 + 0.1  # noqa: E731 - inside class k's envelope
    real, named, unnamed, far, unsure, weak = decided(
        [[0.9, 0.05, 0.05], [0.02, 0.95, 0.03], [0.05, 0.5, 0.45], [0.02, 0.95, 0.03], [0.5, 0.3, 0.2], [0.15, 0.85, 0.0]],
        [near(0), near(1), near(1), [0, 0, 0], near(0), near(1)])
    assert (real.outcome, real.source, real.confidence) == ("real", None, 0.9)
    assert (named.outcome, named.source, named.evidence["in_domain"]) == ("synthetic", "gan-a", True)
    assert unnamed.outcome == "synthetic-unknown-source" and unnamed.confidence == pytest.approx(0.95)
    assert "no known generator reaches the attribution threshold" in unnamed.evidence["reason"]
    assert far.outcome == "inconclusive" and far.evidence["in_domain"] is False
    assert far.evidence["reason"].startswith("outside the validated domain: novelty")
    assert unsure.outcome == "inconclusive" and "below the open-set threshold" in unsure.evidence["reason"]
    # gan-a is the top candidate, but P(synthetic) 0.85 misses the 0.9 evidence standard: no accusation
    assert weak.outcome == "inconclusive" and "below the evidence standard" in weak.evidence["reason"]


def test_novelty_thresholds_keep_the_asked_share_of_each_class():
    rng = np.random.default_rng(0)
    features = np.concatenate([rng.normal(0, 1, (400, 4)), rng.normal(8, 1, (400, 4))])
    labels = np.repeat([0, 1], 400)
    novelty = dom.Novelty.fit(features, labels, [0, 1])
    limits = novelty.thresholds(features, labels, 0.95)
    distances = novelty.distances(features)
    for k in (0, 1):
        assert np.mean(distances[labels == k, k] <= limits[k]) == pytest.approx(0.95, abs=0.003)
    assert novelty.distances(np.full((1, 4), 40.0)).min() > max(limits)


# -- the platform applies the gates to every trained detector --------------------------------


def test_run_detector_judges_only_images_inside_the_domain(tmp_path):
    detector = FingerprintDetector()
    detector.use_artifact(detector.shipped_artifact())
    small, tiny = noise(32, 1), noise(20, 1)
    findings = run_detector(detector, [make_input(encoded(small), name="a.png"), make_input(encoded(tiny), name="b.png")])
    assert findings[1].outcome == "inconclusive" and findings[1].evidence["domain"]["in_domain"] is False
    # smaller than one tile, so not tiled either (docs/tiles.md): refused by the geometry gate
    assert findings[1].reason == "outside the validated domain: a 20×20 image, the model was validated on 32×32 images"
    assert findings[1].model_sha256 == detector.model_sha256
    assert "domain" in findings[0].evidence and findings[0].evidence["domain"]["novelty"] >= 0
    assert findings[0].to_dict()["outcome"] == findings[0].outcome


def test_an_artifact_without_a_domain_concludes_nothing(tmp_path):
    from safetensors.numpy import load

    detector = FingerprintDetector()
    artifact = detector.shipped_artifact()
    info = {k: v for k, v in artifact.info.items() if k != "domain"}
    bare = pack_artifact({k: v for k, v in load(artifact.data).items() if not k.startswith("domain.")},
                         detector=artifact.detector, version=artifact.version, info=info)
    detector.use_artifact(ArtifactFile.from_bytes(bare))
    [finding] = run_detector(detector, [make_input(encoded(noise(32)), name="a.png")])
    assert finding.label == "unknown" and "records no validated domain" in finding.reason


def test_detect_on_a_camera_photograph_is_inconclusive_with_the_reason(vestige, tmp_path):
    from skimage import data as photos

    path = tmp_path / "rocket.jpg"
    Image.fromarray(photos.rocket()).save(path, quality=92)
    result = vestige("detect", path, "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    trained = [r for r in rows if r["detector"] in ("fingerprint", "repmix", "manifpt")]
    assert len(trained) == 3
    for row in trained:
        assert row["outcome"] == "inconclusive" and row["label"] == "unknown" and row["source"] is None
        # large enough to be tiled (docs/tiles.md), but a camera JPEG's history is refused for the whole file first
        assert row["reason"].startswith("outside the validated domain: a JPEG of quality about 92")
        assert "tiles" not in row["evidence"]
    table = vestige("detect", path)
    assert "inconclusive" in table.stdout and "quality about 92" in table.stdout


# -- training and refitting write the domain ------------------------------------------------


def test_training_records_a_domain_and_refit_domain_replaces_it(vestige, tmp_path):
    from test_fingerprint import SOURCES as FP_SOURCES, tiny_dataset

    tiny_dataset(vestige, tmp_path, per_source=24, first=80_000, val_fraction="0.25")
    trained = vestige("train", "fingerprint", "--dataset", tmp_path / "tiny", "--epochs", "2", "--batch-size", "16", "--json")
    assert trained.exit_code == 0, trained.stderr
    row = json.loads(trained.stdout)
    domain = row["info"]["domain"]
    assert domain["sources"] == list(FP_SOURCES) and domain["sizes"] == [[32, 32]]
    assert set(domain["scales"]) == {"0.75", "0.5"}
    assert domain["command"].startswith("vestige train fingerprint --dataset")
    assert "jpeg_qualities" not in domain  # a folder of PNGs records no JPEG history
    assert set(domain["held_out_generators"]) == set(FP_SOURCES[1:])
    refit = vestige("models", "refit-domain", row["sha256"][:12], "--dataset", tmp_path / "tiny", "--keep", "0.9", "--json")
    assert refit.exit_code == 0, refit.stderr
    new = json.loads(refit.stdout)
    assert new["sha256"] != row["sha256"] and new["info"]["domain"]["refit_of"] == row["sha256"]
    assert new["info"]["domain"]["novelty"]["keep"] == 0.9 and new["info"]["refit_of"] == row["sha256"]
    shown = json.loads(vestige("models", "show", new["sha256"][:12]).stdout)
    assert shown["info"]["domain"]["novelty"]["thresholds"] == new["info"]["domain"]["novelty"]["thresholds"]
    wrong = vestige("models", "refit-domain", row["sha256"][:12], "--dataset", tmp_path / "tiny", "--keep", "1.5")
    assert wrong.exit_code != 0 and "--keep must lie in [0.5, 1)" in wrong.stderr
    # the open-world benchmark runs on the lab's own model and dataset and prints the three figures
    out = tmp_path / "openworld.json"
    bench = vestige("bench", "openworld", "--dataset", tmp_path / "tiny", "--detectors", "fingerprint", "--model",
                    f"fingerprint={new['sha256'][:12]}", "--per-class", "2", "--upscaled", "2", "--out", out)
    assert bench.exit_code == 0, bench.stderr
    assert "Real photographs labelled synthetic" in bench.stdout
    assert "named as another generator" in bench.stdout and "attributed correctly" in bench.stdout
    result = json.loads(out.read_text())
    assert result["real"]["photographs"]["fingerprint"]["synthetic"] == 0.0  # every one outside the 32×32 domain
    assert result["real"]["photographs"]["merged"]["images"] == 102
    assert set(result["unseen"]["held_out"]["fingerprint"]) == set(FP_SOURCES[1:])
    assert result["unseen"]["upscaled-x2"]["fingerprint"]["named"] == 0.0
    assert 0.0 <= result["in_domain"]["fingerprint"]["accuracy"] <= 1.0


def test_reports_list_each_detectors_domain_and_the_images_outside_it():
    from vestige.reports.casereport import domain_limitations

    images = [
        {"filename": "rocket.jpg", "findings": [
            {"detector": "fingerprint", "evidence": {"domain": {"in_domain": False, "reason": "a 640×427 image"}}},
            {"detector": "metadata", "evidence": {}}]},
        {"filename": "sample.png", "findings": [
            {"detector": "fingerprint", "evidence": {"domain": {"in_domain": True, "reason": None}}}]},
    ]
    assert domain_limitations(images) == [
        "Validated domain of fingerprint: 1 of the 2 images it was given were inside it; outside it, and so "
        "inconclusive for it: rocket.jpg (a 640×427 image)."]


def test_stored_verdicts_carry_the_outcome_and_the_reason():
    from vestige.analysis.serialise import verdict_as_dict
    from vestige.db.models import Verdict

    reason = "outside the validated domain: a 640×427 image, the model was validated on 32×32 images"
    outside = Verdict(image_id=1, detector="fingerprint", detector_version="1.0.0", label="unknown",
                      evidence={"domain": {"in_domain": False, "reason": reason}})
    assert (verdict_as_dict(outside)["outcome"], verdict_as_dict(outside)["reason"]) == ("inconclusive", reason)
    named = Verdict(image_id=1, detector="fingerprint", detector_version="1.0.0", label="synthetic", source="dcgan-s0",
                    evidence={"domain": {"in_domain": True, "reason": None}})
    assert (verdict_as_dict(named)["outcome"], verdict_as_dict(named)["reason"]) == ("synthetic", None)
    unnamed = Verdict(image_id=1, detector="repmix", detector_version="1.0.0", label="synthetic", source=None, evidence={})
    assert verdict_as_dict(unnamed)["outcome"] == "synthetic-unknown-source"
