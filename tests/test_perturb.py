"""The built-in perturbation plugin: registered by entry point, deterministic, parameters as recorded."""

from __future__ import annotations

import io

import numpy as np
import pytest
from conftest import photo
from PIL import Image

from vestige.errors import PluginError
from vestige.plugin import ENCODED_IMAGE_KEY
from vestige.plugins import get_plugin_manager
from vestige.robustness import PROBES, apply_chain, get_perturbations, probe_name


@pytest.fixture(scope="module")
def operations():
    return get_perturbations(get_plugin_manager())


def test_every_probe_operation_is_provided_by_the_builtin_plugin(operations):
    assert {op["op"] for ops in PROBES for op in ops} <= set(operations)
    assert "perturb" in dict(get_plugin_manager().list_name_plugin())
    for op in operations.values():
        assert op.description and op.parameters


@pytest.mark.parametrize("ops", PROBES, ids=[probe_name(o) for o in PROBES])
def test_a_probe_gives_the_same_bytes_every_time(operations, ops):
    image = photo(3, size=80)
    first = apply_chain(image.copy(), ops, operations, seed=b"s")
    assert first == apply_chain(image.copy(), ops, operations, seed=b"s")
    out = Image.open(io.BytesIO(first))
    assert out.format == ("JPEG" if ops[0]["op"] == "jpeg" else "PNG")
    expected = {"resize": (round(80 * ops[0]["params"].get("scale", 1)),) * 2, "crop": (72, 72)}.get(ops[0]["op"], (80, 80))
    assert out.size == expected


def test_jpeg_quality_changes_the_bytes_and_leaves_the_encoded_file(operations):
    image = photo(1, size=64)
    q90 = operations["jpeg"].apply(image, rng=np.random.default_rng(0), quality=90)
    q50 = operations["jpeg"].apply(image, rng=np.random.default_rng(0), quality=50)
    assert q90.info[ENCODED_IMAGE_KEY] != q50.info[ENCODED_IMAGE_KEY]
    assert len(q50.info[ENCODED_IMAGE_KEY]) < len(q90.info[ENCODED_IMAGE_KEY])


@pytest.mark.parametrize("op, params", [("jpeg", {"quality": 0}), ("resize", {"scale": 0}), ("crop", {"fraction": 1.5}),
                                        ("blur", {"radius": -1})])
def test_out_of_range_parameters_are_refused(operations, op, params):
    with pytest.raises(ValueError):
        operations[op].apply(photo(0), rng=np.random.default_rng(0), **params)


def test_an_operation_nobody_provides_is_named(operations):
    with pytest.raises(PluginError, match="swirl"):
        apply_chain(photo(0), [{"op": "swirl", "params": {}}], operations, seed=b"")
