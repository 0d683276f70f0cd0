"""Zoo-32: the shipped generators load from verified weights, sample deterministically, and the CLI works.

Everything here runs from the weights inside the package, on the CPU; only
the tests marked as needing ``../shared`` read the CIFAR-10 zip, and they
skip when it is absent.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vestige.core.errors import NotFoundError
from vestige.core.plugins import get_plugin_manager
from vestige.plugin import GeneratorSpec, ShippedManifest
from vestige_zoo.catalog import CLASSIFIER, list_models
from vestige_zoo.registry import load_encoder, load_generator, load_network
from vestige_zoo.sampling import latents, sample_images
from vestige_zoo.weights import WEIGHTS_DIR, WeightsMismatchError, file_sha256, shipped_weights

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
CIFAR_ZIP = SHARED / "data" / "cifar10-jpeg.zip"
needs_cifar = pytest.mark.skipif(not CIFAR_ZIP.is_file(), reason=f"needs the CIFAR-10 zip at {CIFAR_ZIP} (../shared is absent)")

GENERATORS = [m.name for m in list_models(generators_only=True)]
#: All zoo weights and the classifier share this part of the repository's 30 MB weight budget.
WEIGHT_BUDGET_BYTES = 12_000_000


@pytest.fixture(autouse=True)
def one_torch_thread():
    """The zoo's networks are small: one thread is fastest for them, and does not thrash a busy CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_zoo_has_the_seven_design_variants():
    families = {m.name: m.design["family"] for m in list_models(generators_only=True)}
    assert len(families) >= 7
    assert sorted(set(families.values())) == ["GAN", "VAE", "diffusion"]
    assert {m.design["upsampling"] for m in list_models(generators_only=True)} >= {
        "transposed convolution", "nearest neighbour + convolution", "pixel shuffle (sub-pixel convolution)"}
    for model in list_models():
        assert {"family", "normalisation"} <= set(model.design)
        if model.is_generator:
            assert {"upsampling", "loss"} <= set(model.design)


def test_every_model_ships_hash_named_weights_within_budget():
    manifest = shipped_weights()
    assert set(manifest.entries) == {m.name for m in list_models()} and manifest.default is None
    for record in manifest:
        path = WEIGHTS_DIR / record.file
        assert record.file == f"{record.name}-{record.sha256[:8]}.safetensors"
        assert file_sha256(path) == record.sha256
        assert path.stat().st_size == record.size
    assert sum(r.size for r in manifest) <= WEIGHT_BUDGET_BYTES


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_makes_32px_rgb_in_range_and_is_deterministic(name):
    generator = load_generator(name)
    images, labels = sample_images(name, generator, 4, seed=7, class_name="ship")
    again, _ = sample_images(name, generator, 4, seed=7, class_name="ship")
    other, _ = sample_images(name, generator, 4, seed=8, class_name="ship")
    assert images.shape == (4, 32, 32, 3) and images.dtype == np.uint8
    assert labels.tolist() == [8, 8, 8, 8]
    assert np.array_equal(images, again)
    assert not np.array_equal(images, other)
    with torch.no_grad():
        raw = generator(latents(list_models(name)[0].latent_shape, 3, 0), torch.tensor([0, 1, 2]))
    assert raw.shape == (3, 3, 32, 32)
    assert torch.isfinite(raw).all() and raw.min() >= -1 and raw.max() <= 1
    assert raw.std() > 0.01  # not a constant picture


def test_modified_weight_file_is_refused(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, folder)
    record = shipped_weights(folder).entry("dcgan-s0")
    data = bytearray((folder / record.file).read_bytes())
    data[-1] ^= 0x01
    (folder / record.file).write_bytes(bytes(data))
    with pytest.raises(WeightsMismatchError) as excinfo:
        load_generator("dcgan-s0", folder)
    message = str(excinfo.value)
    assert record.file in message and "reinstall" in message and "\n" not in message
    load_generator("dcgan-s1", folder)  # the untouched files still load


def test_missing_weight_file_is_reported(tmp_path):
    folder = tmp_path / "weights"
    shutil.copytree(WEIGHTS_DIR, folder)
    shipped_weights(folder).entry("vae").path.unlink()
    with pytest.raises(NotFoundError, match="missing"):
        load_network("vae", folder)


def test_generators_hook_gives_specs_an_inverter_can_use():
    specs = {s.name: s for batch in get_plugin_manager().hook.vestige_generators() for s in batch}
    assert set(GENERATORS) <= set(specs)
    for name in GENERATORS:
        spec = specs[name]
        assert isinstance(spec, GeneratorSpec)
        assert spec.input_spec.num_classes == 10 and spec.input_spec.distribution == "normal"
        assert spec.weights_sha256 == shipped_weights().entry(name).sha256
        assert {"family", "upsampling", "loss", "normalisation"} <= set(spec.metadata)
        assert (spec.encoder is not None) == (name == "vae")
    vae = specs["vae"]
    images = vae.build()(torch.zeros(2, *vae.input_spec.latent_shape), torch.tensor([3, 5]))
    z = vae.encoder()(images, torch.tensor([3, 5]))
    assert z.shape == (2, *vae.input_spec.latent_shape)


def test_encoder_is_only_for_the_vae():
    assert load_encoder("vae") is not None
    with pytest.raises(NotFoundError, match="only the VAE"):
        load_encoder("dcgan-s0")


def test_classifier_loads_and_names_ten_classes():
    classifier = load_network(CLASSIFIER)
    with torch.no_grad():
        logits = classifier(torch.zeros(2, 3, 32, 32))
    assert logits.shape == (2, 10)


def test_cli_list_shows_hashes_and_design_choices(vestige):
    table = vestige("zoo list")
    assert table.exit_code == 0
    assert all(name in table.stdout for name in GENERATORS)
    listed = json.loads(vestige("zoo list --json").stdout)
    by_name = {e["name"]: e for e in listed}
    assert by_name["pixelshuffle-wgangp"]["design"]["loss"].startswith("WGAN-GP")
    assert by_name["dcgan-s0"]["sha256"] == shipped_weights().entry("dcgan-s0").sha256
    assert by_name[CLASSIFIER]["kind"] == "classifier"


def test_cli_sample_writes_deterministic_pngs(vestige, tmp_path):
    first = vestige(f"zoo sample nnup-hinge --n 3 --class cat --seed 5 --out {tmp_path / 'a'}")
    assert first.exit_code == 0, first.stderr
    vestige(f"zoo sample nnup-hinge --n 3 --class cat --seed 5 --out {tmp_path / 'b'}")
    files = sorted((tmp_path / "a").glob("*.png"))
    assert [f.name for f in files] == [f"nnup-hinge-s5-0000{i}-cat.png" for i in range(3)]
    for f in files:
        assert (tmp_path / "b" / f.name).read_bytes() == f.read_bytes()
        with Image.open(f) as image:
            assert image.size == (32, 32) and image.mode == "RGB"


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ("zoo sample no-such-model --n 1 --out x", "no zoo model is called 'no-such-model'; use one of dcgan-s0"),
        ("zoo sample cifar10-classifier --n 1 --out x", "is not a generator"),
    ],
)
def test_cli_refuses_unknown_names_in_one_sentence(vestige, command, message):
    result = vestige(command)
    assert result.exit_code == 1
    assert message in result.stderr and "Traceback" not in result.stderr


def test_cli_refuses_an_unknown_class(vestige, tmp_path):
    result = vestige(f"zoo sample dcgan-s0 --n 1 --class unicorn --out {tmp_path}")
    assert result.exit_code == 2
    assert "unicorn" in result.stderr


@needs_cifar
def test_training_is_reproducible_from_the_seed(tmp_path):
    from vestige_zoo.training import train_model

    records = [train_model("vae", CIFAR_ZIP, tmp_path / run, seed=3, steps=2, log=lambda _: None) for run in ("a", "b")]
    assert records[0]["sha256"] == records[1]["sha256"]
    assert records[0]["steps"] == 2 and "--seed 3 --steps 2 --device cpu --threads" in records[0]["command"]
    saved = json.loads((tmp_path / "a" / "vae.json").read_text())
    assert (tmp_path / "a" / saved["weights"]).is_file()


@needs_cifar
def test_cli_train_writes_weights_that_ship(vestige, tmp_path):
    from vestige_zoo.weights import ship

    result = vestige(f"zoo train dcgan-s0 --data {CIFAR_ZIP} --out {tmp_path / 'run'} --seed 0 --steps 1 --device cpu")
    assert result.exit_code == 0, result.stderr
    shipped = ship(tmp_path / "run", folder=tmp_path / "weights")
    assert [r.name for r in shipped] == ["dcgan-s0"]
    load_generator("dcgan-s0", tmp_path / "weights")


def test_stylegan_inversion_view_reproduces_zoo_samples_and_reaches_the_noise():
    """The inverter gets the StyleGAN-like model with its noise maps in the latent, which z alone cannot reach."""
    from vestige_zoo.stylegan_net import ExplicitNoise

    specs = {s.name: s for batch in get_plugin_manager().hook.vestige_generators() for s in batch}
    spec = specs["stylegan-mini"]
    view = spec.build()
    assert isinstance(view, ExplicitNoise) and spec.input_spec.latent_shape == (64 + 16 + 64 + 256 + 1024,)
    assert "noise" in spec.metadata["inversion_input"]
    z, y = latents((64,), 3, 5), torch.tensor([0, 4, 9])
    sampled = load_generator("stylegan-mini")(z, y)
    assert torch.equal(view(view.latent_of(z), y), sampled)
    latent = view.latent_of(z).requires_grad_(True)
    view(latent, y).square().sum().backward()
    assert latent.grad[:, 64:].abs().sum() > 0  # the noise part of the latent is differentiable
    assert specs["dcgan-s0"].input_spec.latent_shape == (64,)


def test_a_candidate_weights_folder_is_listed_sampled_and_judged_like_the_shipped_one(vestige, tmp_path):
    """`--weights DIR` points list, sample, grid and evaluate at a candidate release; its files are hash-checked too."""
    candidate = tmp_path / "candidate"
    entry = shipped_weights().entry("dcgan-s0")
    offered = ShippedManifest(candidate)
    offered.add("dcgan-s0", entry.read_bytes(), entry.metadata)
    offered.write()
    listed = json.loads(vestige(f"zoo list --json --weights {candidate}").stdout)
    assert {e["name"]: e["sha256"] for e in listed}["dcgan-s0"] == entry.sha256
    assert {e["name"]: e["sha256"] for e in listed}["vae"] is None
    for folder, out in ((candidate, "a.json"), (None, "b.json")):
        option = f"--weights {folder}" if folder else ""
        assert vestige(f"zoo evaluate dcgan-s0 --per-class 3 --out {tmp_path / out} {option}").exit_code == 0
    a, b = (json.loads((tmp_path / f).read_text())["generators"] for f in ("a.json", "b.json"))
    assert a == b
    result = vestige(f"zoo grid --per-class 2 --out {tmp_path / 'grids'} --prefix next- --weights {candidate}")
    assert result.exit_code == 0 and [p.name for p in (tmp_path / "grids").iterdir()] == ["next-dcgan-s0.png"]
    with (candidate / entry.file).open("r+b") as fh:
        fh.seek(-1, 2)
        fh.write(b"\x01" if fh.read(1) != b"\x01" else b"\x02")
    result = vestige(f"zoo sample dcgan-s0 --n 1 --out {tmp_path / 's'} --weights {candidate}")
    assert result.exit_code != 0 and "does not match its recorded SHA-256" in result.stderr


@needs_cifar
def test_bf16_gan_training_replays_exactly_and_its_snapshots_ship(vestige, tmp_path):
    from vestige_zoo.training import train_model

    runs = [train_model("nnup-hinge", CIFAR_ZIP, tmp_path / run, seed=2, steps=4, precision="bf16", snapshot_every=2,
                        log=lambda _: None) for run in ("a", "b")]
    assert runs[0]["sha256"] == runs[1]["sha256"] and runs[0]["precision"] == "bf16"
    assert "--steps 4 --precision bf16" in runs[0]["command"]
    snapshot = tmp_path / "a" / "snapshots" / "step-2"
    assert json.loads((snapshot / "nnup-hinge.json").read_text())["steps"] == 2
    assert not (tmp_path / "a" / "snapshots" / "step-4").exists()  # the last step is the run's own result
    result = vestige(f"zoo ship {snapshot} --to {tmp_path / 'candidate'}")
    assert result.exit_code == 0, result.stderr
    load_generator("nnup-hinge", tmp_path / "candidate")
    refused = vestige(f"zoo train vae --data {CIFAR_ZIP} --out {tmp_path / 'vae'} --steps 1 --precision bf16")
    assert refused.exit_code != 0 and "for the GANs" in refused.stderr


def test_the_shipped_gans_are_the_bf16_release_and_the_weights_fit_the_budget():
    """The GANs docs/zoo.md describes: retrained in bf16 with the step counts its replay commands give."""
    manifest = shipped_weights()
    gans = [m.name for m in list_models(generators_only=True) if m.trainer == "gan"]
    assert len(gans) == 5
    for name in gans:
        training = manifest.entry(name).metadata["training"]
        assert training["precision"] == "bf16" and "--precision bf16" in training["command"]
        assert training["steps"] >= 5500, f"{name} ships {training['steps']} steps"
    plugins = WEIGHTS_DIR.parents[1]
    every_weight_file = sum(p.stat().st_size for p in plugins.rglob("*.safetensors"))
    assert every_weight_file <= 30_000_000, f"the repository's model weights total {every_weight_file:,} bytes (budget 30 MB)"


def test_ship_promotes_a_candidate_folder_and_replaces_the_old_files(vestige, tmp_path):
    """A folder with a manifest (a candidate release judged with --weights) is shipped as it is."""
    from vestige_zoo.weights import save_state

    weights, candidates = tmp_path / "weights", tmp_path / "candidates"
    shutil.copytree(WEIGHTS_DIR, weights)
    old = shipped_weights(weights)
    state = old.entry("dcgan-s0").load()
    state = {k: v * 1.01 if v.is_floating_point() else v for k, v in state.items()}  # another dcgan-s0
    path, _ = save_state(state, "dcgan-s0", candidates)
    training = {**old.entry("dcgan-s0").metadata["training"], "note": "candidate"}
    offered = ShippedManifest(candidates)
    offered.add("dcgan-s0", path.read_bytes(), {"training": training})
    offered.write()
    result = vestige(f"zoo ship {candidates} --to {weights}")
    assert result.exit_code == 0, result.stderr
    promoted = shipped_weights(weights)
    assert promoted.entry("dcgan-s0").to_dict() == offered.entry("dcgan-s0").to_dict()
    assert not old.entry("dcgan-s0").path.exists()
    load_generator("dcgan-s0", weights)
    assert ({e.name: e.to_dict() for e in promoted if e.name != "dcgan-s0"}
            == {e.name: e.to_dict() for e in old if e.name != "dcgan-s0"})
