"""The public plugin API (vestige.plugin and its submodules, docs/plugins.md "What a plugin may import"):
every documented module exports what its table row promises, and the augmentations built from registered
perturbations behave as the perturbation plugin's own operations do."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vestige.plugin import PluginError, augment

DOCS = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def _documented_modules() -> dict[str, str]:
    text = DOCS.read_text()
    section = text[text.index("## What a plugin may import"):text.index("## How the rules are enforced")]
    return dict(re.findall(r"^\| `(vestige\.plugin[\w.]*)` \| (.*) \|$", section, re.M))


def test_every_public_module_is_documented_and_exports_its_names():
    documented = _documented_modules()
    package = Path(importlib.import_module("vestige.plugin").__file__).parent
    modules = {"vestige.plugin"} | {f"vestige.plugin.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    assert modules == set(documented), "docs/plugins.md's table and vestige/plugin/ list different modules"
    for name, row in documented.items():
        module = importlib.import_module(name)
        exported = set(getattr(module, "__all__", ())) | {n for n in dir(module) if not n.startswith("_")}
        for promised in re.findall(r"`(\w+)`", row):
            assert promised in exported, f"docs/plugins.md promises {promised} in {name}"


def _pictures(n: int = 6) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(n)]


def test_resharing_draws_the_registered_operations_and_is_repeatable():
    first = [np.asarray(augment.Resharer()(p, np.random.default_rng([7, i]))) for i, p in enumerate(_pictures())]
    again = [np.asarray(augment.Resharer()(p, np.random.default_rng([7, i]))) for i, p in enumerate(_pictures())]
    assert all(a.shape == (32, 32, 3) and np.array_equal(a, b) for a, b in zip(first, again))
    assert any(not np.array_equal(a, np.asarray(p)) for a, p in zip(first, _pictures()))


def test_an_augmentation_without_its_operations_says_which_are_missing():
    operations = augment.registered_operations()
    without_blur = {name: op for name, op in operations.items() if name != "blur"}
    with pytest.raises(PluginError, match="blur"):
        augment.Resharer(without_blur)
    with pytest.raises(PluginError, match="corrupt-jpeg-compression"):
        augment.jpeg_compression_qualities({})


def test_the_corruption_sets_name_registered_operations_and_state_their_jpeg_qualities():
    from vestige_perturb.corruptions import CORRUPTIONS, JPEG_QUALITIES, random_corruption

    operations = augment.registered_operations()
    assert set(augment.SEEN_CORRUPTIONS) | set(augment.UNSEEN_CORRUPTIONS) <= set(operations)
    assert not set(augment.SEEN_CORRUPTIONS) & set(augment.UNSEEN_CORRUPTIONS)
    assert augment.jpeg_compression_qualities() == JPEG_QUALITIES == (30, 20, 15, 10, 7)
    # The plugin's own draw and the public one over the registered operations are the same draw.
    picture = _pictures(1)[0]
    mine, record = random_corruption(picture, np.random.default_rng(3), names=augment.UNSEEN_CORRUPTIONS)
    public, same = augment.random_corruption(picture, np.random.default_rng(3), operations=operations,
                                             names=augment.UNSEEN_CORRUPTIONS)
    assert record == same and np.array_equal(np.asarray(mine), np.asarray(public))
    assert operations[record["op"]] is CORRUPTIONS[record["op"]]


def test_a_lent_network_is_built_verified_and_an_unknown_one_is_refused():
    import torch

    from vestige.plugin import NotFoundError
    from vestige.plugin.services import get_networks, load_network

    spec = get_networks()["cifar10-classifier"]
    assert len(spec.weights_sha256) == 64 and spec.build is not None
    network = load_network("cifar10-classifier")
    assert not network.training
    x = torch.zeros((2, 3, 32, 32))
    with torch.no_grad():
        assert network(x).shape[0] == 2
    with pytest.raises(NotFoundError, match="cifar10-classifier"):
        load_network("no-such-network")
