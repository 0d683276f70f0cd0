"""A lab's weights: `vestige generators convert` turns a pickled checkpoint into a hash-named safetensors file,
and `vestige.plugin.load_verified` reads it back only when its SHA-256 matches."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vestige.core.errors import NotFoundError, VestigeError
from vestige.plugin import WeightsMismatchError, file_sha256, load_verified

torch = pytest.importorskip("torch")
nn = torch.nn


def small_network() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))


@pytest.mark.parametrize("layout", ["state_dict", "nested", "data_parallel"])
def test_convert_writes_a_hash_named_file_that_loads_verified_into_the_model(vestige, tmp_path, layout):
    network = small_network()
    state = network.state_dict()
    saved = {"state_dict": state, "nested": {"model": state, "epoch": 7, "optimizer": {"lr": 0.1}},
             "data_parallel": {f"module.{k}": v for k, v in state.items()}}[layout]
    checkpoint = tmp_path / "face-dcgan.pt"
    torch.save(saved, checkpoint)
    result = vestige("generators", "convert", checkpoint, "--out", tmp_path / "weights")
    assert result.exit_code == 0, result.stderr
    written = json.loads(result.stdout)
    path = Path(written["file"])
    assert path.name == f"face-dcgan-{written['sha256'][:8]}.safetensors" and file_sha256(path) == written["sha256"]
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # nothing half-written left beside it
    fresh = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 2))
    fresh.load_state_dict(load_verified(path, written["sha256"]))
    for key, value in state.items():
        assert torch.equal(fresh.state_dict()[key], value.float() if value.is_floating_point() else value)


def test_a_checkpoint_that_pickles_code_is_refused_without_running_it(vestige, tmp_path):
    checkpoint = tmp_path / "whole-model.pt"
    torch.save(small_network(), checkpoint)  # the whole module object, not its state dict
    result = vestige("generators", "convert", checkpoint, "--out", tmp_path / "weights")
    assert result.exit_code != 0 and "Traceback" not in result.stderr
    assert "cannot be read as a weights-only torch checkpoint" in result.stderr
    assert "save `model.state_dict()`" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "weights").exists() or not any((tmp_path / "weights").iterdir())


def test_an_ambiguous_checkpoint_asks_for_the_key(vestige, tmp_path):
    state = small_network().state_dict()
    checkpoint = tmp_path / "gan.pt"
    torch.save({"generator": state, "model": state}, checkpoint)
    result = vestige("generators", "convert", checkpoint, "--out", tmp_path / "w")
    assert result.exit_code != 0 and "name it with --key" in result.stderr
    result = vestige("generators", "convert", checkpoint, "--out", tmp_path / "w" / "g.safetensors", "--key", "generator")
    assert result.exit_code == 0 and json.loads(result.stdout)["file"].endswith("g.safetensors")


def test_load_verified_refuses_a_modified_or_missing_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.arange(4.0)}, str(path))
    digest = file_sha256(path)
    assert torch.equal(load_verified(path, digest)["a"], torch.arange(4.0))
    data = bytearray(path.read_bytes())
    data[-1] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsMismatchError, match="does not match its recorded SHA-256.*modified or damaged"):
        load_verified(path, digest)
    with pytest.raises(NotFoundError, match="is missing; reinstall my-plugin"):
        load_verified(tmp_path / "gone.safetensors", digest, remedy="reinstall my-plugin")
    assert issubclass(WeightsMismatchError, VestigeError)  # the command line prints its sentence, no traceback
