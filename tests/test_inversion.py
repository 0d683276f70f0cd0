"""The inversion verifier: statistics, the batched optimiser, calibration artifacts, a lab's generator, the CLI."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from conftest import photo, pip_install_plugin, put_on_path
from vestige.errors import InvalidInputError
from vestige_inversion.statistics import Fit, auroc, grubbs_critical

torch = pytest.importorskip("torch")

FAST = {"steps": 60, "restarts": 2, "screen_steps": 10, "lr": 0.1}


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def labgen_site(tmp_path_factory) -> Path:
    """The example lab plugin, pip-installed into a folder of its own, as a lab would install it."""
    return pip_install_plugin("vestige_labgen", tmp_path_factory.mktemp("labgen-site"))


@pytest.fixture
def labgen(labgen_site, monkeypatch):
    yield from put_on_path(labgen_site, "vestige_labgen", monkeypatch)


@pytest.fixture
def lab_generator(labgen):
    from vestige_inversion.generators import LoadedGenerator, get_spec

    return LoadedGenerator.load(get_spec("labgen"))


# -- statistics ------------------------------------------------------------------


def test_p_value_and_grubbs_statistic_on_known_numbers():
    # log-losses 0..4: mean 2, sd sqrt(2.5); a new log-loss of 5 gives T = 3 / (sd * sqrt(1 + 1/5)) = sqrt(3).
    fit = Fit.of(np.exp(np.arange(5.0)), np.ones(5), "log-loss")
    assert (fit.n, fit.mean, fit.sd) == (5, 2.0, pytest.approx(math.sqrt(2.5)))
    test = fit.test(math.exp(5.0), 1.0, alpha=0.05)
    assert test.grubbs_g == pytest.approx(3 / math.sqrt(2.5))
    assert test.p == pytest.approx(0.079151, abs=1e-6)  # one-sided t(4) tail at sqrt(3)
    assert test.belongs  # 0.079 >= 0.05
    assert not fit.test(math.exp(7.0), 1.0, alpha=0.05).belongs
    assert fit.test(math.exp(-3.0), 1.0, alpha=0.05).p > 0.95  # a low loss is never evidence against belonging


@pytest.mark.parametrize(("n", "alpha", "critical"), [(10, 0.05, 2.176), (20, 0.05, 2.557), (10, 0.01, 2.410)])
def test_grubbs_critical_values_match_the_published_table(n, alpha, critical):
    assert grubbs_critical(n, alpha) == pytest.approx(critical, abs=1e-3)


def test_complexity_normalisation_is_chosen_only_when_it_tightens_the_calibration():
    comp = np.array([0.1, 0.2, 0.4, 0.8])
    assert Fit.of(comp * 0.01, comp).statistic == "log-loss-per-complexity"  # loss proportional to complexity
    assert Fit.of(np.array([0.01, 0.011, 0.0105, 0.0102]), comp).statistic == "log-loss"


def test_auroc():
    assert auroc(np.array([1, 2, 3]), np.array([4, 5])) == 1.0
    assert auroc(np.array([4, 5]), np.array([1, 2, 3])) == 0.0
    assert auroc(np.array([1, 2]), np.array([1, 2])) == 0.5


# -- the optimiser --------------------------------------------------------------------


def _invert(gen, images, **settings):
    from vestige_inversion.optimise import Settings, invert

    return invert(gen.module, gen.spec.input_spec, images, Settings(**{**FAST, **settings}), encoder=gen.encoder)


def test_minimum_over_restarts_never_exceeds_a_restart_and_more_restarts_are_never_worse(lab_generator):
    images = torch.rand(4, 3, 16, 16) * 2 - 1  # not the generator's: losses stay well above zero
    one = _invert(lab_generator, images, restarts=1, steps=40)
    three = _invert(lab_generator, images, restarts=3, steps=40)
    assert torch.equal(three.loss, three.restart_loss.min(dim=1).values)
    assert (three.loss <= three.restart_loss.T).all()
    # Restart 0 follows the same path whatever the number of restarts.
    assert torch.allclose(three.restart_loss[:, 0], one.loss, rtol=1e-5)
    assert (three.loss <= one.loss * (1 + 1e-5)).all()
    # The running minimum: never above where it started, and the reconstruction shown is the one that scored it.
    assert (three.restart_loss <= three.initial_loss).all()
    shown = (three.reconstruction - images).square().flatten(1).mean(1)
    assert torch.allclose(shown, three.loss, rtol=1e-4)
    assert three.steps == 40 and not three.budget_hit


def test_inversion_is_deterministic_on_the_cpu(lab_generator):
    images, _ = lab_generator.sample(4, seed=7)
    a, b = _invert(lab_generator, images), _invert(lab_generator, images)
    assert torch.equal(a.loss, b.loss) and torch.equal(a.reconstruction, b.reconstruction)


def test_a_wall_clock_budget_stops_early_and_says_so(lab_generator):
    images, _ = lab_generator.sample(2, seed=7)
    from vestige_inversion.optimise import Settings, invert

    result = invert(lab_generator.module, lab_generator.spec.input_spec, images, Settings(steps=100_000, screen_steps=5),
                    max_seconds=0.5)
    assert result.budget_hit and 1 <= result.steps < 100_000
    assert result.loss.shape == (2,) and torch.isfinite(result.loss).all()


@pytest.mark.parametrize("loss", ["mse", "l1", "ssim"])
def test_every_loss_reconstructs_the_generators_own_samples_better_than_noise(lab_generator, loss):
    own, _ = lab_generator.sample(3, seed=11)
    noise = torch.rand(3, 3, 16, 16) * 2 - 1
    assert _invert(lab_generator, own, loss=loss).loss.max() < _invert(lab_generator, noise, loss=loss).loss.min()


def test_encoder_initialisation_starts_the_vae_lower_than_a_random_latent():
    from vestige_inversion.generators import LoadedGenerator, get_spec

    vae = LoadedGenerator.load(get_spec("vae"))
    assert vae.encoder is not None
    images, _ = vae.sample(8, seed=3)
    result = _invert(vae, images, steps=1, screen_steps=1, restarts=2)
    encoder_start, random_start = result.initial_loss[:, 0], result.initial_loss[:, 1]
    assert (encoder_start < random_start).all()
    assert encoder_start.mean() < 0.5 * random_start.mean()


# -- calibrations -----------------------------------------------------------------------


@pytest.fixture
def lab_calibration(lab_generator):
    from vestige_inversion.calibration import calibrate
    from vestige_inversion.optimise import Settings

    return calibrate(lab_generator, 24, Settings(**FAST), sample_seed=1)


def test_calibration_set_round_trips_and_a_modified_one_is_refused(lab_calibration):
    from vestige.training import ArtifactFile, pack_artifact
    from vestige_inversion.calibration import DETECTOR, VERSION, pack_set, unpack_set

    artifact = ArtifactFile.from_bytes(pack_set({"labgen": lab_calibration}))
    back = unpack_set(artifact)["labgen"]
    assert back.fit == lab_calibration.fit and back.sha256 == lab_calibration.sha256
    assert np.array_equal(back.losses, lab_calibration.losses)
    # Someone lowers one loss to widen what "belongs" means, and keeps the header.
    tensors = artifact.tensors()
    tensors["labgen/losses"] = tensors["labgen/losses"].copy()
    tensors["labgen/losses"][0] *= 10
    forged = pack_artifact(tensors, detector=DETECTOR, version=VERSION, info=artifact.info)
    with pytest.raises(InvalidInputError, match="modified"):
        unpack_set(ArtifactFile.from_bytes(forged))


def test_shipped_calibration_set_is_verified_against_its_manifest(tmp_path):
    from vestige_inversion.calibration import SHIPPED_DIR, shipped_manifest, shipped_set

    manifest = shipped_manifest()
    if not manifest:
        pytest.skip("this build ships no calibration set")
    assert shipped_set().sha256 == manifest["sha256"]
    copy = tmp_path / "calibrations"
    copy.mkdir()
    (copy / "manifest.json").write_text(json.dumps(manifest))
    data = bytearray((SHIPPED_DIR / manifest["file"]).read_bytes())
    data[-1] ^= 1
    (copy / manifest["file"]).write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="modified or damaged"):
        shipped_set(copy)


def test_the_lab_generator_s_samples_belong_and_other_images_do_not(lab_generator, lab_calibration):
    from vestige.training import ArtifactFile
    from vestige_inversion.calibration import pack_set
    from vestige_inversion.detector import InversionDetector
    from vestige.plugin import ImageInput
    from vestige_inversion.generators import to_pictures

    detector = InversionDetector()
    detector.use_artifact(ArtifactFile.from_bytes(pack_set({"labgen": lab_calibration})))
    detector.load("cpu")
    own, _ = lab_generator.sample(3, seed=99)  # not the calibration's samples
    noise = to_pictures(torch.rand(2, 3, 16, 16) * 2 - 1)
    pictures = [*to_pictures(own), *noise, photo(1, 64)]
    findings = detector.analyze([ImageInput(f"i{i}", "0" * 64, b"", p, "PNG") for i, p in enumerate(pictures)])
    assert [f.source for f in findings] == ["labgen"] * 3 + [None] * 3
    assert [f.label for f in findings] == ["synthetic"] * 3 + ["unknown"] * 3
    first = findings[0]
    assert first.model_sha256 == detector.model_sha256
    cand = first.evidence["candidates"]["labgen"]
    assert cand["calibration_sha256"] == lab_calibration.sha256
    assert cand["weights_sha256"] == lab_generator.spec.weights_sha256
    assert set(cand) >= {"loss", "p", "grubbs_g", "grubbs_critical", "steps", "restarts", "seconds", "class"}
    assert 0 <= first.scores["labgen"] <= 1 and findings[-1].scores["labgen"] < 0.01
    assert first.pictures[0].data.startswith(b"\x89PNG")


# -- the command line ----------------------------------------------------------------------


def test_cli_calibrates_the_lab_generator_into_the_registry_and_detect_uses_it(vestige, workspace, labgen, tmp_path,
                                                                              make_photo, monkeypatch):
    from vestige_inversion.generators import LoadedGenerator, get_spec, to_pictures

    result = vestige("inversion", "calibrate", "labgen", "--n", "16", "--steps", "60", "--screen-steps", "10")
    assert result.exit_code == 0, result.stderr
    stored = json.loads(result.stdout)
    assert stored["artifact"]["default"] and stored["n"] == 16
    listed = json.loads(vestige("models", "list", "--json").stdout)
    assert stored["artifact"]["sha256"] in {row["sha256"] for row in listed if row["detector"] == "inversion"}

    sample = tmp_path / "lab-sample.png"
    own, _ = LoadedGenerator.load(get_spec("labgen")).sample(1, seed=5)
    to_pictures(own)[0].save(sample)
    monkeypatch.setenv("VESTIGE_INVERSION_GENERATORS", "labgen")
    result = vestige("detect", sample, make_photo("photo.jpg"), "--detector", "inversion", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["label"], r["source"]) for r in rows] == [("synthetic", "labgen"), ("unknown", None)]
    assert rows[0]["model_sha256"] == stored["artifact"]["sha256"]


@pytest.mark.slow
def test_cli_detect_names_the_zoo_generator_of_its_sample_and_not_a_photo(vestige, tmp_path, make_photo, monkeypatch):
    from vestige_inversion.calibration import shipped_manifest

    if "dcgan-s0" not in shipped_manifest().get("generators", {}):
        pytest.skip("this build ships no calibration for dcgan-s0")
    out = tmp_path / "samples"
    assert vestige("zoo", "sample", "dcgan-s0", "--n", "1", "--seed", "0", "--out", out).exit_code == 0
    sample = next(out.glob("*.png"))
    monkeypatch.setenv("VESTIGE_INVERSION_GENERATORS", "dcgan-s0,vae")
    result = vestige("detect", sample, make_photo("photo.jpg", size=32), "--detector", "inversion", "--json")
    assert result.exit_code == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert (rows[0]["label"], rows[0]["source"]) == ("synthetic", "dcgan-s0")
    assert (rows[1]["label"], rows[1]["source"]) == ("unknown", None)
    assert set(rows[0]["scores"]) == {"dcgan-s0", "vae"}
    assert rows[0]["evidence"]["candidates"]["dcgan-s0"]["weights_sha256"]


def test_unknown_candidate_generator_is_refused_with_the_registered_ones(vestige, tmp_path, monkeypatch, make_photo):
    monkeypatch.setenv("VESTIGE_INVERSION_GENERATORS", "no-such-model")
    result = vestige("detect", make_photo(), "--detector", "inversion", "--json")
    assert result.exit_code != 0
    assert "no-such-model" in result.stderr and "dcgan-s0" in result.stderr and "Traceback" not in result.stderr
