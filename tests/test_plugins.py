"""The plugin API: discovery by entry point, allow-list, isolation, and the detector contract."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

from conftest import pip_install_plugin, put_on_path
from vestige.core.errors import PluginError
from vestige.core.plugins import get_detectors, get_plugin_manager, plugin_infos, register_plugin, select_detectors
from vestige.plugin.hookspecs import hookimpl

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def example_site(tmp_path_factory) -> Path:
    """The example plugin, pip-installed into a folder of its own, as a lab would install a plugin."""
    return pip_install_plugin("vestige_example", tmp_path_factory.mktemp("example-site"))


@pytest.fixture
def with_example(example_site, monkeypatch):
    yield from put_on_path(example_site, "vestige_example", monkeypatch)


def test_builtin_plugins_register_through_entry_points():
    pm = get_plugin_manager()
    assert "metadata" in dict(pm.list_name_plugin())
    assert pm.origins["metadata"].group == "vestige"


def test_installed_plugin_is_listed_with_version_and_hooks(vestige, with_example):
    result = vestige("plugins", "--json")
    assert result.exit_code == 0, result.stderr
    infos = {p["name"]: p for p in json.loads(result.stdout)}
    assert infos["example"]["version"] == "1.2.0"
    assert infos["example"]["distribution"] == "vestige-example"
    assert infos["example"]["hooks"] == ["vestige_commands", "vestige_detectors"]
    assert [d["name"] for d in infos["example"]["detectors"]] == ["example-flatness", "example-broken"]
    assert infos["metadata"]["detectors"][0]["kind"] == "provenance"
    table = vestige("plugins")
    assert "example" in table.stdout and "1.2.0" in table.stdout


def test_installed_plugin_detector_runs_and_a_broken_one_is_isolated(vestige, with_example, make_photo, tmp_path):
    from PIL import Image

    flat = tmp_path / "flat.png"
    Image.new("RGB", (32, 32), (90, 90, 90)).save(flat)
    textured = make_photo("t.jpg")
    result = vestige("detect", flat, textured, "--detector", "example-flatness", "--detector", "example-broken",
                     "--detector", "metadata", "--json")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_key = {(Path(r["file"]).name, r["detector"]): r for r in rows}
    assert by_key[("flat.png", "example-flatness")]["label"] == "synthetic"
    assert by_key[("flat.png", "example-flatness")]["source"] == "test-card"
    assert by_key[("t.jpg", "example-flatness")]["label"] == "unknown"
    assert by_key[("t.jpg", "example-flatness")]["evidence"]["pixel_std"] > 2
    broken = by_key[("flat.png", "example-broken")]
    assert broken["label"] == "unknown" and "broken on purpose" in broken["error"]
    assert by_key[("t.jpg", "metadata")]["error"] is None  # the others went on
    assert result.exit_code == 1  # a detector failed


def test_plugin_commands_are_added(vestige, with_example):
    result = vestige("example-hello")
    assert result.exit_code == 0 and result.stdout.strip() == "hello from vestige-example"


def test_real_vestige_executable_sees_the_installed_plugin(example_site, tmp_path):
    # The full path a lab takes: the plugin is on the Python path, the installed script finds it.
    env = {**os.environ, "PYTHONPATH": str(example_site), "VESTIGE_DATA_DIR": str(tmp_path / "var")}
    out = subprocess.run(
        [str(Path(sys.executable).with_name("vestige")), "plugins", "--json"],
        env=env, capture_output=True, text=True, check=True, cwd=tmp_path,
    ).stdout
    assert "example" in {p["name"] for p in json.loads(out)}


def test_allow_list_limits_what_loads(with_example):
    pm = get_plugin_manager(allow=["metadata"])
    assert [name for name, _ in pm.list_name_plugin()] == ["metadata"]


def test_allow_list_environment_variable(vestige, with_example, monkeypatch):
    monkeypatch.setenv("VESTIGE_PLUGINS", "example")
    names = {p["name"] for p in json.loads(vestige("plugins", "--json").stdout)}
    assert names == {"example"}


def test_allow_list_naming_a_missing_plugin_is_an_error(vestige, monkeypatch):
    monkeypatch.setenv("VESTIGE_PLUGINS", "metadata,nonesuch")
    result = vestige("plugins")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: the plugin allow-list names nonesuch, which is not installed")


def test_a_plugin_that_fails_to_import_is_reported_by_name(tmp_path, monkeypatch):
    site = tmp_path / "site"
    dist = site / "vestige_crashy-0.1.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: vestige-crashy\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[vestige]\ncrashy = vestige_crashy\n")
    (site / "vestige_crashy.py").write_text("raise ImportError('needs a library that is not installed')\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    pm = get_plugin_manager()
    infos = {i.name: i for i in plugin_infos(pm)}
    assert "needs a library that is not installed" in infos["crashy"].error
    assert infos["metadata"].error is None  # the others still load


def test_a_misspelt_hook_is_caught_when_registering():
    pm = get_plugin_manager()
    plugin = types.ModuleType("typo_plugin")
    plugin.vestige_detector = hookimpl(lambda: [])  # missing the final "s"
    with pytest.raises(PluginError, match="vestige_detector"):
        register_plugin(pm, plugin, name="typo")
    assert not pm.has_plugin("typo")


def test_a_plugin_returning_something_else_than_a_detector_is_refused():
    pm = get_plugin_manager()
    plugin = types.ModuleType("bad_plugin")
    plugin.vestige_detectors = hookimpl(lambda: ["not a detector"])
    register_plugin(pm, plugin, name="bad")
    with pytest.raises(PluginError, match="not a vestige.plugin.Detector"):
        select_detectors(pm)


def test_unknown_detector_name_lists_the_valid_ones(vestige, make_photo):
    result = vestige("detect", make_photo(), "--detector", "nope")
    assert result.exit_code == 1
    installed = ", ".join(get_detectors(get_plugin_manager()))
    assert "metadata" in installed
    assert result.stderr.strip() == f"error: no detector named 'nope'; installed detectors: {installed}"


def test_hooks_are_called_with_keyword_arguments_and_subsets():
    pm = get_plugin_manager()
    seen = {}
    plugin = types.ModuleType("sections_plugin")

    def vestige_report_sections(verdicts):  # takes a subset of (case, verdicts)
        seen["verdicts"] = verdicts
        return []

    plugin.vestige_report_sections = hookimpl(vestige_report_sections)
    register_plugin(pm, plugin, name="sections")
    pm.hook.vestige_report_sections(case=None, verdicts=[1, 2])
    assert seen["verdicts"] == [1, 2]
    with pytest.raises(TypeError):
        pm.hook.vestige_report_sections(None, [1])  # positional arguments are refused


def test_loading_the_plugins_does_not_import_torch():
    # Every `vestige` command loads every plugin; torch costs about a second to import,
    # so plugins bring it in only when a model is actually used.
    code = (
        "import sys\n"
        "from vestige.cli.app import State, cli\n"
        "state = State.from_environment()\n"
        "state.add_plugin_commands(cli)\n"
        "from vestige.core.plugins import get_detectors\n"
        "get_detectors(state.pm)\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_costly_detectors_run_only_when_named():
    pm = get_plugin_manager()
    everything = get_detectors(pm)
    by_default = {d.name for d in select_detectors(pm)}
    assert "inversion" in everything and "inversion" not in by_default
    assert by_default == {name for name, d in everything.items() if d.runs_by_default}
    assert [d.name for d in select_detectors(pm, ["inversion"])] == ["inversion"]
