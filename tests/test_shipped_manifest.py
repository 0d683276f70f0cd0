"""The one manifest format of shipped weight files (`vestige.plugin.ShippedManifest`), and every built-in plugin's."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path

import pytest

from vestige.core.errors import InvalidInputError, NotFoundError
from vestige.plugin import SHIPPED_FORMAT, ShippedManifest, WeightsMismatchError
from vestige.plugin.training import read_shipped

PLUGINS = Path(__file__).resolve().parents[1] / "plugins"
#: Every folder of shipped weights in the repository, and the default entry each names.
BUILT_IN = {
    "vestige_fingerprint/weights": "fingerprint-autoencoder-immunised",
    "vestige_repmix/weights": "repmix-zoo32",
    "vestige_manifpt/weights": "manifpt",
    "vestige_zoo/weights": None,
    "vestige_inversion/calibrations": "calibration-set",
}


def one_line(error: pytest.ExceptionInfo[Exception]) -> str:
    message = str(error.value)
    assert "\n" not in message
    return message


def test_every_manifest_in_the_repository_is_a_built_in_one():
    assert {str(p.parent.relative_to(PLUGINS)) for p in PLUGINS.rglob("manifest.json")} == set(BUILT_IN)


@pytest.mark.parametrize("folder", sorted(BUILT_IN))
def test_built_in_shipped_weights_read_verify_and_round_trip(folder, tmp_path):
    path = PLUGINS / folder
    manifest = ShippedManifest.read(path)
    assert len(manifest) >= 1 and manifest.default == BUILT_IN[folder]
    files = {p.name for p in path.glob("*.safetensors")}
    assert {e.file for e in manifest} == files  # every shipped file is in the manifest, and only those
    for entry in manifest:
        data = entry.read_bytes()
        assert entry.file == f"{entry.name}-{entry.sha256[:8]}.safetensors" and len(data) == entry.size
    copy = ShippedManifest(tmp_path, manifest.entries, manifest.default, note=manifest.note)
    assert copy.write().read_bytes() == manifest.path.read_bytes()  # the committed file is what write() writes


def test_round_trip_default_and_replacement(tmp_path):
    manifest = ShippedManifest.read(tmp_path / "weights")
    assert len(manifest) == 0 and manifest.default is None and read_shipped(tmp_path / "weights") is None
    first = manifest.add("small", b"one", {"metrics": {"accuracy": 0.9}, "note": "é"})
    manifest.add("large", b"two", make_default=True)
    path = manifest.write()
    text = path.read_text(encoding="utf-8")
    assert text.endswith("}\n") and "é" in text and text == json.dumps(json.loads(text), indent=2, sort_keys=True,
                                                                          ensure_ascii=False) + "\n"
    content = json.loads(text)
    assert content["format"] == SHIPPED_FORMAT and content["default"] == "large"
    assert content["entries"]["small"] == {"file": f"small-{hashlib.sha256(b'one').hexdigest()[:8]}.safetensors",
                                           "sha256": hashlib.sha256(b"one").hexdigest(), "size": 3,
                                           "metrics": {"accuracy": 0.9}, "note": "é"}
    again = ShippedManifest.read(tmp_path / "weights")
    assert again.to_dict() == manifest.to_dict() and again.entry().name == "large"
    assert again.entry("small") == first and again.entry("small").read_bytes() == b"one"
    assert again.with_sha256(first.sha256) == first and again.with_sha256("0" * 64) is None
    replaced = again.add("small", b"three")
    again.write()
    assert not first.path.exists() and replaced.path.read_bytes() == b"three"
    assert sorted(p.name for p in (tmp_path / "weights").iterdir()) == sorted(
        ["manifest.json", replaced.file, again.entry("large").file])


def test_an_unknown_name_lists_the_known_ones_and_no_default_is_said(tmp_path):
    manifest = ShippedManifest(tmp_path)
    manifest.add("b", b"1")
    manifest.add("a", b"2")
    with pytest.raises(NotFoundError) as error:
        manifest.entry("c")
    assert "'c'" in one_line(error) and "a, b" in str(error.value)
    with pytest.raises(NotFoundError, match="no default entry"):
        manifest.entry()


def test_a_modified_or_missing_file_is_refused_in_one_line(tmp_path):
    manifest = ShippedManifest(tmp_path, remedy="reinstall vestige-facegan")
    entry = manifest.add("facegan", b"weights", make_default=True)
    manifest.write()
    entry.path.write_bytes(b"weightz")
    with pytest.raises(WeightsMismatchError) as error:
        ShippedManifest.read(tmp_path, remedy="reinstall vestige-facegan").entry().read_bytes()
    assert entry.file in one_line(error) and "modified or damaged" in str(error.value)
    assert str(error.value).endswith("reinstall vestige-facegan.")
    assert isinstance(error.value, InvalidInputError)  # a shipped artifact's refusal keeps its class
    entry.path.unlink()
    with pytest.raises(NotFoundError) as error:
        ShippedManifest.read(tmp_path).entry().read_bytes()
    assert entry.file in one_line(error) and "missing" in str(error.value)


@pytest.mark.parametrize("content", [
    "{not json",
    json.dumps({"default": "a", "artifacts": {"a": {"file": "a-00000000.safetensors", "sha256": "0" * 64}}}),
    json.dumps({"manifpt": {"file": "manifpt-00000000.safetensors", "sha256": "0" * 64}}),
    json.dumps({"format": "vestige-shipped/2", "default": None, "entries": {}}),
    json.dumps([SHIPPED_FORMAT]),
    json.dumps({"format": SHIPPED_FORMAT, "default": "b", "entries": {}}),
    json.dumps({"format": SHIPPED_FORMAT, "default": None, "entries": {"a": {"file": "a.safetensors"}}}),
    json.dumps({"format": SHIPPED_FORMAT, "default": None,
                "entries": {"a": {"file": "../a.safetensors", "sha256": "0" * 64, "size": 1}}}),
], ids=["json", "artifacts-layout", "single-entry-layout", "future-format", "not-an-object", "unknown-default",
        "incomplete-entry", "file-outside-the-folder"])
def test_an_invalid_manifest_is_refused_in_one_line_naming_it(tmp_path, content):
    (tmp_path / "manifest.json").write_text(content)
    with pytest.raises(InvalidInputError) as error:
        ShippedManifest.read(tmp_path)
    assert str(tmp_path / "manifest.json") in one_line(error) and "reinstall the plugin" in str(error.value)


def test_refitting_a_shipped_artifact_replaces_its_file_and_keeps_its_metadata(tmp_path, monkeypatch):
    from vestige.models.domainfit import ship_refit

    plugin = tmp_path / "refit_plugin"
    manifest = ShippedManifest(plugin / "weights")
    old = manifest.add("model", b"trained", {"metrics": {"accuracy": 0.5}}, make_default=True)
    manifest.write()
    module = types.ModuleType("refit_plugin_detector")
    module.__file__ = str(plugin / "detector.py")
    monkeypatch.setitem(sys.modules, module.__name__, module)
    detector = type("RefitDetector", (), {"__module__": module.__name__})()
    path = ship_refit(detector, old.sha256, b"refitted", "vestige models refit-domain X")
    entry = ShippedManifest.read(plugin / "weights").entry()
    assert path == entry.path and entry.name == "model" and entry.read_bytes() == b"refitted" and not old.path.exists()
    assert entry.metadata == {"metrics": {"accuracy": 0.5}, "trained_sha256": old.sha256, "domain_refit_of": old.sha256,
                              "domain_command": "vestige models refit-domain X"}
    with pytest.raises(InvalidInputError, match="no shipped artifact"):
        ship_refit(detector, old.sha256, b"again", "c")
